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
// Goroutines: the exit pump, the dispatcher and the event forwarder (one each, for the shim's
// life); one per exit being published (service.publishing counts them: the shutdown waits for
// them before it flushes the events); the trimmer's timer.
//
// Lock order: service.mu → exitRouter.mu, service.mu → pod.Set.mu (shutdownIfIdle asks the
// pods); execGate.mu, eventQueue.mu, inflight.mu and tracker.mu are leaves. No lock is held
// across an OCI runtime call or a publish.
package task
