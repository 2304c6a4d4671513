// Package oom will watch containers' cgroups for OOM kills (cgroup v1 memory.oom_control
// eventfd, cgroup v2 memory.events oom_kill) and call back the task service, which publishes
// /tasks/oom before the init's /tasks/exit.
//
// Not implemented yet: see the issue "Full Task API parity". Until then no TaskOOM event is
// published; New reports that plainly.
package oom
