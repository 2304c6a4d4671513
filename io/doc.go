// Package io wires a container process's stdio to what the client asked for.
//
// It owns every descriptor it opens for a process: the ends handed to the OCI runtime
// (closed in the shim once the runtime has started, see [ProcessIO.CloseAfterStart]) and
// the ends the shim keeps for the life of the process:
//   - the write end of the stdin fifo, so that a client that goes away does not give the
//     container a false EOF; only CloseIO ([ProcessIO.CloseStdin]) releases it;
//   - a read end of each stdout/stderr fifo, so that the container never gets EPIPE while
//     containerd restarts and reopens its side.
//
// A process never gets the client's fifos themselves: each fifo stream reaches it as a pipe,
// and a copier moves the pipe's pages to or from the fifo with splice(2), in the kernel (no
// buffer in the shim; throughput is the same as a write into the fifo itself). criu can then
// checkpoint the container (runc records pipes as external descriptors and hands the new task's
// pipes back on restore; a fifo on a mount outside the container cannot be dumped), and the shim
// can end an exec's output when the exec is deleted, whatever it left behind still holds the
// pipe (copier.go).
//
// Import it as shimio: it shadows the standard library's io.
package io
