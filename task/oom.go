//go:build linux

package task

import (
	"context"

	eventstypes "github.com/containerd/containerd/api/events"
	"github.com/containerd/log"

	"github.com/custom-shim/containerd-shim-custom-v1/oom"
	"github.com/custom-shim/containerd-shim-custom-v1/process"
)

// oomEvents publishes /tasks/oom for the containers of the shim. Its methods are no-ops when
// the host has no cgroup the watcher can read (the shim then runs without OOM events, as
// logged once), and on a nil *oomEvents (a service built without one, as in unit tests).
type oomEvents struct {
	w *oom.Watcher // nil: OOM watching unavailable
}

// newOOMEvents starts the shim's one OOM watcher; its callback queues TaskOOM on events, in
// order with every other event of the shim.
func newOOMEvents(ctx context.Context, events *eventQueue) *oomEvents {
	w, err := oom.New(func(id string) {
		events.send(&eventstypes.TaskOOM{ContainerID: id})
	})
	if err != nil {
		log.G(ctx).WithError(err).Warn("OOM watcher unavailable: no /tasks/oom events")
		return &oomEvents{}
	}
	return &oomEvents{w: w}
}

// watch starts watching container id's cgroup, the one its init's cgroup was loaded from. Call
// it right after the OCI runtime's create, before start, so that an OOM in the container's
// first instants is seen (containerd 842cb99a5). A failure is logged: the container runs,
// without OOM events.
func (o *oomEvents) watch(ctx context.Context, id string, init *process.Init) {
	if o == nil || o.w == nil {
		return
	}
	dir, err := init.OOMDir()
	if err == nil {
		err = o.w.AddDir(id, dir)
	}
	if err != nil {
		logger(ctx, id, "").WithError(err).Warn("watch OOM kills: no /tasks/oom for this container")
	}
}

// beforeInitExit publishes the container's OOM kill not reported yet, if any. It reads the
// kill counter synchronously: call it just before queueing the init's TaskExit, so that
// TaskOOM comes first even when the watcher's wakeup has not been handled yet (CRI decides
// OOMKilled from the order: containerd#8893, kubernetes#119600).
func (o *oomEvents) beforeInitExit(id string) {
	if o == nil || o.w == nil {
		return
	}
	o.w.Check(id)
}

// release stops watching container id (on Delete) and frees its fd.
func (o *oomEvents) release(id string) {
	if o == nil || o.w == nil {
		return
	}
	o.w.Stop(id)
}

// close stops the watcher at shim shutdown.
func (o *oomEvents) close() {
	if o == nil || o.w == nil {
		return
	}
	if err := o.w.Close(); err != nil {
		log.L.WithError(err).Warn("close OOM watcher")
	}
}
