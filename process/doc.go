// Package process runs a container's init and exec processes through an OCI runtime (runc
// by default) and keeps their state.
//
// Every process moves through one state table (state.go). Transitions are compare-and-set
// steps under a short lock (proc.mu); runtime calls happen between those steps, never under
// that lock, so an exit can always be recorded, whatever call is in flight: exit wins.
// Lifecycle operations of one process (start, pause, delete) are serialised by opMu, which
// the exit path never takes: what the exit path reads (SetExited, MarkReaped, WaitOutputTaken:
// an exec's stdio is an atomic pointer set before its pid is known) needs no opMu.
//
// Lock order: Container.mu → proc.mu. opMu is taken with neither held. No goroutines of its own
// (the stdio's copiers are package io's; the runc monitor is package tune's).
//
// Errors returned here wrap an errdefs class; the task package converts them to gRPC codes.
// Where the class is chosen for a cause that is itself an error (bad options, an unreadable
// spec), the cause is formatted as text ("%v: %w"): wrapped, a class or a gRPC status it carries
// could be what errors.Is sees or what errgrpc.ToGRPC sends instead of the class chosen here.
// Packages pod and io do the same.
package process
