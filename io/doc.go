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
// A container's init gets its fifos directly: no copy runs in the shim, so output is never
// truncated by a drain timeout and throughput is the kernel's. An exec's output goes through a
// pipe the shim copies to the fifo (Config.CopyOutput, copier.go): what the exec leaves behind
// may hold its output for as long as it lives, and only the shim's own copy can be ended when the
// exec is deleted.
//
// Import it as shimio: it shadows the standard library's io.
package io
