// Package pod holds a Kubernetes pod's namespaces and shared files for the shim's Sandbox API
// (pause-less pods): the pod's network, IPC, UTS and (with shareProcessNamespace) PID namespaces
// are held by a tiny process of the shim's own (the holder: no image, no OCI runtime), whose pid
// the CRI plugin joins member containers to (/proc/<pid>/ns/*); /etc/hostname, /etc/hosts,
// /etc/resolv.conf and /dev/shm live under the sandbox's bundle and are mounted into member
// containers (PatchMember) because in shim mode the CRI plugin leaves them to the sandbox.
//
// It is at the level of package process: it knows nothing of ttrpc or the Sandbox API types
// (package sandbox is the API adapter); errors wrap an errdefs class and name the sandbox.
package pod
