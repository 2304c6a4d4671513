// Package rootfs mounts a container's root filesystem on its bundle's rootfs directory from the
// mounts of the Task API's Create request, and takes it down again at Delete or, after the shim
// died, in the delete action.
//
// Most rootfs arrays are plain mounts (an overlay of a snapshotter's directories, a bind), done
// with mount.All as containerd's runc shim does. Since containerd 2.2 an array may also carry
// containerd's mount transforms, when no mount manager of the daemon applied them (no mount
// manager plugin, or a caller of the Task API other than containerd's task manager): a type
// prefixed "format/" (the {{ mount N }}, {{ overlay A B }}, {{ source N }} and {{ target N }}
// templates, which name earlier mounts of the array), "mkdir/" (X-containerd.mkdir.path= options)
// or "mkfs/" (X-containerd.mkfs.* options: a file system image made if missing), and mounts the
// later ones refer to, such as the erofs snapshotter's layer images (type erofs, option loop).
// Such an array is activated with containerd's own mount manager (core/mount/manager), as the
// daemon would: every mount before the last transformed one is made on a mount point of the
// manager's (a loop device for a "loop" option, autoclear, so that the unmount releases it), the
// templates are filled in, the directories made, and what is left (the overlay) is mounted on the
// rootfs directory.
//
// The manager's state lives in the bundle (stateDir: its bolt database and its mount points), so
// that Unmount needs nothing but the bundle: the delete action, run by containerd after a shim
// was killed, finds there what to unmount.
//
// No goroutines; no locks of its own (the mount manager serialises activations of one name).
// Errors name the container and wrap an errdefs class; the cause is formatted as text (as in
// package process) so that a class the mount manager chose, such as NotImplemented, which Create
// must never answer, does not reach the caller.
package rootfs
