// Package task is the shim's ttrpc Task service (containerd.task.v3.Task, also served as
// containerd.task.v2.Task for daemons older than 2.0): it decodes requests, calls package
// process, publishes events in order and converts errors to gRPC codes once, in a unary
// interceptor.
//
// Exits flow one way: pkg/shim's SIGCHLD loop → reaper.Default → exitPump (appends to an
// unbounded queue, never blocks the reaper) → one dispatcher goroutine → exitRouter (which
// process had that pid; exits during a start are captured by the start's window) → execGate
// (an init's exit is published only after all of its execs' exits) → the ordered event queue
// → the forwarder → containerd.
//
// Lock order: service.mu → exitRouter.mu; execGate.mu and eventQueue.mu are leaves. No lock is
// held across an OCI runtime call or a publish.
package task
