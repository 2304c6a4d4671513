//go:build linux

// Package installer puts containerd-shim-custom-v1 on a node and takes it off again: the
// binary, and the CRI runtime handlers in containerd's config, as a drop-in file that the
// operator's own config imports. It never edits the operator's config file.
//
// What install does, in order (Install):
//
//  1. Find the containerd line from `containerd --version` (Line).
//  2. Read the operator's config: its version and its imports. The drop-in goes where one of its
//     import globs will pick it up (DropInPath); if none does, install refuses and prints the
//     imports line to add, because editing that file is the operator's business. containerd 2.x
//     does not follow /etc/containerd/conf.d by itself: its built-in default lists that glob
//     (`containerd config default` prints it), but only the imports of the files it loads are
//     followed (cmd/containerd/server/config.LoadConfigWithPlugins).
//  3. Take `containerd config dump` without our drop-in (an old one is set aside), render the
//     drop-in for the line (render.go), write it, dump again, and compare: the handlers must be
//     there and nothing else may have changed. Otherwise the old state is put back.
//  4. Copy the binary in atomically (a temp file in the same directory, then rename), so running
//     shims keep executing their old inode.
//  5. Restart containerd only when asked (its config is read at start).
//
// The drop-in differs by line because containerd's import merging does:
//
//   - 2.x (config version 3): plugin tables are merged key by key, so the drop-in holds only the
//     handlers' tables under io.containerd.cri.v1.runtime.
//   - 1.6 and 1.7 (config version 2): an imported file's plugin table replaces the whole table
//     of that plugin (services/server/config.mergeConfig: "Replace entire sections"), so a
//     drop-in with only the handlers would drop every CRI setting of the operator, and even the
//     default runc runtime. The drop-in therefore carries the CRI plugin's whole table as
//     containerd resolved it before the install (from the dump) plus the handlers, and the
//     comparison proves nothing else changed. The price: while it is installed, CRI settings
//     edited in config.toml take effect only after install runs again.
//   - 1.6 only: its CRI plugin keeps nothing of a non-runc runtime's options table but TypeUrl
//     and ConfigPath, so the runtime options go in a file of their own named by ConfigPath.
//
// Uninstall removes what the drop-in's header records (the binary if it is still the one
// installed, the options file, a directory install created) and the drop-in itself.
package installer
