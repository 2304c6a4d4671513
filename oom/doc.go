// Package oom watches containers' memory cgroups for OOM kills and calls back the task
// service, which publishes /tasks/oom.
//
// One Watcher serves every container of the shim with one epoll instance and one goroutine:
//
//   - cgroup v1: an eventfd registered through cgroup.event_control on memory.oom_control;
//     the kill count is the "oom_kill" line of memory.oom_control (kernel 4.13+).
//   - cgroup v2: an inotify instance per container watching memory.events (its "oom_kill"
//     field: "oom" counts OOM situations, not kills, containerd#6323) and cgroup.events
//     (populated 0: no process is left, so no kill can come and the fd is released early).
//
// A wakeup only tells the loop to re-read the kill counter; a callback is made when the
// counter has grown past what was already reported. Check does the same read synchronously,
// so that the task service can report a kill before publishing the init's exit even when the
// loop has not woken up yet (gVisor's checkProcesses does this read at exit): the kernel
// counts an OOM kill before it sends the SIGKILL, so a reaped OOM victim's kill is always
// visible to a read made after the reap.
//
// Stop removes a container's entry and releases its fd: create/delete cycles leave nothing
// behind (containerd 7f9455628 fixed the opposite). The package defines no event types.
package oom
