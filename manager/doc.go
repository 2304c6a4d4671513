// Package manager implements every role of the containerd-shim-custom-v1 binary except serving
// the task API: the `start` action (socket, grouping, re-exec of the server, shim cgroup and OOM
// score), the `delete` action run by containerd after a shim died (forced runc delete, rootfs
// unmount, a DeleteResponse on stdout), `-info` and `-v`.
//
// `start` speaks both bootstrap protocols, because containerd does not:
//
//   - legacy (containerd 1.6, 1.7, 2.0–2.2): stdin is empty or a marshalled google.protobuf.Any
//     holding the runtime options; the reply on stdout is the plain socket address, which every
//     legacy daemon reads as a version-2 ttrpc shim.
//   - new (containerd ≥ 2.3): stdin is a protobuf BootstrapParams whose instance id and namespace
//     match the -id and -namespace flags; the reply is a protobuf BootstrapResult (version 3).
//
// Main tells the two apart before containerd's pkg/shim sees the invocation, since pkg/shim ≥ 2.3
// rejects the legacy form; every other invocation (serve, delete, -info) goes to shim.RunShim.
//
// containerd reads start's stdout and stderr combined, so a successful start writes nothing but
// its reply: its log goes to the bundle's shim log fifo when containerd has one open, else nowhere.
//
// start runs the server with GOMAXPROCS=1 (tune.ServerProcsEnv: one P is ~300 KiB less private
// memory for an idle shim); the server's internal plugin `procs` (package tune) gives its
// environment back the GOMAXPROCS that start was given, for the OCI runtime it runs.
//
// The package holds no long-lived state and starts no goroutines other than the one that waits
// for the forked server within the short-lived start process.
package manager
