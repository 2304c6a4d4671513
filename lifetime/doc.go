// Package lifetime is the shim server's life, shared by its services (package task's Task
// service and package sandbox's Sandbox service), as a pkg/shim internal plugin (PluginID):
//
//   - the unary interceptor of every service: it converts each error to its gRPC code, once,
//     and counts the requests in flight;
//   - when the server decides to exit: once nothing it serves is busy (each service registers a
//     busy report, Serves) and no new work is reserved (Reserve), ShutdownIfIdle makes it
//     closing: it takes no new work (Reserve answers Unavailable), says so to the start action's
//     probe (Closing; ClosingVersion on the wire), and moves its socket out of the group's path
//     (retiredSocket) before the Shutdown that made it decide is answered; then it waits, still
//     serving, for the services' drains (Drains: the Task service's events delivered), at most
//     lingerMax, before its shutdown begins;
//   - the order of its shutdown (one pkg/shim shutdown callback): closing and the socket's move,
//     the requests in flight answered (inflight.wait), then the services' stop steps in the order
//     they were registered (OnStop: the Task service's exit publications and event flush, the
//     Sandbox service's release of the pods), and last the retired socket removed.
//
// The start action (package manager) and the server speak through two names defined here:
// SocketEnv (the server's socket address, in its environment) and ClosingVersion (the Version a
// closing server answers to a Connect without an id).
//
// Lock order: Server.mu → whatever the services' busy reports take (task's service.mu, the pod
// Set's mu): a service never calls into Server while it holds a lock of its own. inflight.mu and
// tracker.mu are leaves. No goroutine of its own: pkg/shim runs the shutdown callback.
package lifetime
