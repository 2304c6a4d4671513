// Package pod holds a Kubernetes pod's namespaces and shared files for the shim's Sandbox API
// (pause-less pods): the pod's network, IPC, UTS and (with shareProcessNamespace) PID namespaces
// are held by a tiny process of the shim's own (the holder: no image, no OCI runtime), whose pid
// the CRI plugin joins member containers to (/proc/<pid>/ns/*); /etc/hostname, /etc/hosts,
// /etc/resolv.conf and /dev/shm live under the sandbox's bundle and are mounted into member
// containers (PatchMember) because in shim mode the CRI plugin leaves them to the sandbox.
//
// It is at the level of package process: it knows nothing of ttrpc or the Sandbox API types
// (package sandbox is the API adapter); errors wrap an errdefs class and name the sandbox.
//
// # The holder
//
// A static, freestanding C program of about 4 KiB (holder/holder.c), built for amd64 and arm64
// by go generate (the images are committed and embedded), written into a sealed memfd once per
// shim process and executed as /proc/self/fd/4. The shim hands it its configuration and the
// pod's network and user namespaces; it makes the pod's namespaces (inside the pod's user
// namespace, if it has one; a new PID namespace through a fork, its child being the holder),
// confines itself (an empty read-only root, no capability, uid and gid 65535, not dumpable,
// no_new_privs, a seccomp filter allowing read, write, close and exit), reports on fd 5, and
// blocks reading fd 3, the read end of a pipe whose write end only the shim holds: it exits 0
// when Stop closes that end, or when the shim dies (holder.go). The shim then puts it in the
// pod's cgroup with a sandbox's OOM score (placement.go). Idle it costs 8 kB of anonymous
// memory, one page of code shared by all holders, and its kernel structures.
//
// # Files in the bundle
//
// hostname, hosts, resolv.conf, shm (a tmpfs mount unless the pod has host IPC), and
// holder-cgroups (the holder's cgroup directories). Stop removes the cgroups and unmounts shm;
// Release and CleanupBundle remove them all.
//
// # Locks and goroutines
//
// Pod.opMu serialises Start, Stop and Release and is taken before Pod.mu, which guards the
// pod's state for as long as a field access. Each started pod has one goroutine, watch, which
// waits for the holder's exit through pkg/shim's reaper (reaper.Default: a subscription that it
// drains, the exit of the process that forked the holder included) and then marks the pod
// Stopped and closes Done; it takes only Pod.mu and ends with the holder. Set.mu guards the
// set's maps only. Pod.stats (the pod's loaded cgroup, for Metrics) is a leaf, held across the
// cgroup's reads.
package pod
