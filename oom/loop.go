//go:build linux

package oom

import (
	"errors"

	"github.com/containerd/log"
	"golang.org/x/sys/unix"
)

// armLocked starts the recheck timer unless it runs already. w.mu is held.
func (w *Watcher) armLocked() {
	if w.armed || w.closed {
		return
	}
	spec := unix.ItimerSpec{Value: unix.NsecToTimespec(recheckInterval.Nanoseconds())}
	if err := unix.TimerfdSettime(w.timer, 0, &spec, nil); err != nil {
		log.L.WithError(err).Warn("OOM watcher: arm recheck timer")
		return
	}
	w.armed = true
}

// recheck re-reads the counters of the pending entries.
func (w *Watcher) recheck() {
	var buf [8]byte
	_, _ = unix.Read(w.timer, buf[:])
	w.mu.Lock()
	w.armed = false
	list := make([]*entry, 0, len(w.pending))
	for e := range w.pending {
		list = append(list, e)
	}
	w.mu.Unlock()
	for _, e := range list {
		e.mu.Lock()
		if e.stopped || e.src == nil {
			w.setPendingLocked(e, false)
			e.mu.Unlock()
			continue
		}
		tries := e.tries
		reported, finished, err := w.updateLocked(e, false)
		if err != nil {
			log.L.WithError(err).WithField("container_id", e.id).Warn("read OOM kill count")
		}
		if !reported && !finished && tries > 0 {
			e.tries = tries - 1
			if e.tries == 0 {
				w.mu.Lock()
				delete(w.pending, e)
				w.mu.Unlock()
			}
		}
		if finished {
			w.releaseLocked(e)
		}
		e.mu.Unlock()
	}
	w.mu.Lock()
	if len(w.pending) > 0 {
		w.armLocked()
	}
	w.mu.Unlock()
}

// run is the watcher's goroutine: it waits on every watched fd and re-reads the counters of
// the cgroups that signalled.
func (w *Watcher) run() {
	defer close(w.done)
	var events [64]unix.EpollEvent
	for {
		n, err := unix.EpollWait(w.epfd, events[:], -1)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			log.L.WithError(err).Error("OOM watcher: epoll wait; no more OOM events")
			return
		}
		for _, ev := range events[:n] {
			switch key := uint32(ev.Fd); key {
			case keyWake:
				return
			case keyTimer:
				w.recheck()
			default:
				w.mu.Lock()
				e := w.byKey[key]
				w.mu.Unlock()
				if e != nil {
					w.handle(e)
				}
			}
		}
	}
}

// handle consumes e's wakeup, reports a kill, and releases the fd once the cgroup is finished.
func (w *Watcher) handle(e *entry) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.stopped || e.src == nil {
		return
	}
	_, finished, err := w.updateLocked(e, true)
	if err != nil {
		log.L.WithError(err).WithField("container_id", e.id).Warn("read OOM kill count")
	}
	if finished {
		w.releaseLocked(e)
	}
}
