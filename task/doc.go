// Package task is the shim's ttrpc Task service (containerd.task.v3.Task, also served as
// containerd.task.v2.Task for daemons older than 2.0): it decodes requests, calls package
// process, publishes events in order; errors wrap an errdefs class, and the server's interceptor
// (package lifetime) converts them to gRPC codes once.
//
// Exits flow one way: pkg/shim's SIGCHLD loop → reaper.Default → exitPump (appends to an
// unbounded queue, never blocks the reaper) → one dispatcher goroutine → exitRouter (which
// process had that pid; exits during a start are captured by the start's window) → execGate
// (an init's exit is published only after all of its execs' exits) → the ordered event queue
// → the forwarder → containerd.
//
// Goroutines: the exit pump, the dispatcher and the event forwarder (one each, for the shim's
// life); one per exit being published (service.publishing, a tracker, counts them: the shutdown
// waits for them before it flushes the events); the trimmer's timer (package tune).
//
// Lock order: service.mu → exitRouter.mu; lifetime's Server.mu → service.mu (ShutdownIfIdle
// asks the busy report); the pods (PatchMember, Shutdown) are called with no lock of the
// service's held; eventQueue.mu → tracker.mu (send counts an event as undelivered under the
// queue's lock, so that the forwarder cannot count it delivered first); execGate.mu and
// tracker.mu are leaves. No lock is held across an OCI runtime call or a publish.
package task
