//go:build linux

package oom

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/containerd/cgroups/v3"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	"golang.org/x/sys/unix"
)

// Epoll keys: entries are named by a key of their own, never by their fd, so that an event
// for a closed fd whose number a newer watch reuses is never attributed to the newer one.
const (
	keyWake  uint32 = 0 // eventfd written by Close
	keyTimer uint32 = 1 // timerfd for rechecks
	keyFirst uint32 = 2
)

// A cgroup v1 OOM notification comes before the kernel counts the kill (it notifies, then
// picks and kills a victim, printing the OOM report on the way: milliseconds). A notification
// that finds the counter unchanged makes its entry pending: its counter is re-read every
// recheckInterval, up to recheckTries times, until the kill shows. An OOM that ends without a
// kill (the victim was already dying) just runs out of tries. The init-exit path does not
// depend on this: Check reads the counter after the reap, when the kill is counted.
const (
	recheckInterval = 20 * time.Millisecond
	recheckTries    = 100 // 2s
)

// Watcher watches the memory cgroups of many containers with one epoll instance and one
// goroutine, and calls onOOM(id) when a container's cgroup counts a new OOM kill: once per
// increase of the counter that the watcher observes, so a storm of OOM notifications around
// one kill gives one call (the reference shim publishes one TaskOOM per notification).
//
// onOOM is called from the watcher's goroutine, or from the goroutine calling Check; calls for
// one container never overlap and no kill is reported twice. onOOM must not block and must
// not call the Watcher.
type Watcher struct {
	mode  Mode
	onOOM func(id string)
	epfd  int
	wake  int // eventfd that interrupts epoll_wait for Close
	timer int // timerfd armed while entries are pending
	done  chan struct{}

	mu      sync.Mutex
	byID    map[string]*entry   // guarded by mu
	byKey   map[uint32]*entry   // entries whose fd is in the epoll set; guarded by mu
	pending map[*entry]struct{} // entries to recheck on the timer; guarded by mu
	nextKey uint32              // guarded by mu
	armed   bool                // timer armed; guarded by mu
	closed  bool                // guarded by mu
}

// entry is one watched container. Its mu serialises the counter reads and onOOM calls for the
// container, so that a kill reported by the loop and one found by Check are never both
// reported, and a Check returns only after a report in progress has been made.
// Lock order: entry.mu → Watcher.mu.
type entry struct {
	id  string
	key uint32

	mu       sync.Mutex
	src      source // nil once released (fd closed)
	reported uint64 // kill count already reported (or present when the watch began)
	tries    int    // rechecks left while pending
	stopped  bool
}

// New returns a Watcher for this host's cgroup version: v1 on legacy and hybrid hosts (where
// the memory controller is a v1 hierarchy), v2 on unified hosts.
func New(onOOM func(id string)) (*Watcher, error) {
	switch cgroups.Mode() {
	case cgroups.Unified:
		return NewMode(V2, onOOM)
	case cgroups.Legacy, cgroups.Hybrid:
		return NewMode(V1, onOOM)
	}
	return nil, fmt.Errorf("OOM watcher: no cgroup hierarchy found: %w", errdefs.ErrNotImplemented)
}

// NewMode returns a Watcher for cgroup version m and starts its goroutine.
func NewMode(m Mode, onOOM func(id string)) (_ *Watcher, retErr error) {
	if m != V1 && m != V2 {
		return nil, fmt.Errorf("OOM watcher: %s: %w", m, errdefs.ErrInvalidArgument)
	}
	var fds []int
	defer func() {
		if retErr != nil {
			for _, fd := range fds {
				_ = unix.Close(fd)
			}
		}
	}()
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("OOM watcher: epoll: %w: %w", err, errdefs.ErrUnavailable)
	}
	fds = append(fds, epfd)
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("OOM watcher: eventfd: %w: %w", err, errdefs.ErrUnavailable)
	}
	fds = append(fds, wake)
	timer, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_CLOEXEC|unix.TFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("OOM watcher: timerfd: %w: %w", err, errdefs.ErrUnavailable)
	}
	fds = append(fds, timer)
	for _, r := range []struct {
		fd  int
		key uint32
	}{{wake, keyWake}, {timer, keyTimer}} {
		if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, r.fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(r.key)}); err != nil {
			return nil, fmt.Errorf("OOM watcher: epoll add: %w: %w", err, errdefs.ErrUnavailable)
		}
	}
	w := &Watcher{
		mode:    m,
		onOOM:   onOOM,
		epfd:    epfd,
		wake:    wake,
		timer:   timer,
		done:    make(chan struct{}),
		byID:    map[string]*entry{},
		byKey:   map[uint32]*entry{},
		pending: map[*entry]struct{}{},
		nextKey: keyFirst,
	}
	go w.run()
	return w, nil
}

// Mode returns the cgroup version the watcher reads.
func (w *Watcher) Mode() Mode { return w.mode }

// AddDir watches the cgroup directory dir (the memory controller's directory on v1, the group
// on v2) for container id. Kills counted before the call are not reported.
func (w *Watcher) AddDir(id, dir string) error {
	w.mu.Lock()
	_, dup := w.byID[id]
	closed := w.closed
	w.mu.Unlock()
	if closed {
		return fmt.Errorf("watch OOM of container %s: watcher closed: %w", id, errdefs.ErrUnavailable)
	}
	if dup {
		return fmt.Errorf("watch OOM of container %s: %w", id, errdefs.ErrAlreadyExists)
	}
	src, err := w.mode.open(dir)
	if err != nil {
		return fmt.Errorf("watch OOM of container %s in %s: %w", id, dir, err)
	}
	if err := w.addSource(id, src); err != nil {
		_ = src.close()
		return err
	}
	return nil
}

// addSource registers an opened watch.
func (w *Watcher) addSource(id string, src source) error {
	e := &entry{id: id, src: src}
	// Baseline: a cgroup that outlived an earlier container must not report that one's kills.
	if n, known, _, err := src.read(); err == nil && known {
		e.reported = n
	}

	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return fmt.Errorf("watch OOM of container %s: watcher closed: %w", id, errdefs.ErrUnavailable)
	}
	if _, ok := w.byID[id]; ok {
		return fmt.Errorf("watch OOM of container %s: %w", id, errdefs.ErrAlreadyExists)
	}
	e.key = w.allocKeyLocked()
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLERR | unix.EPOLLHUP, Fd: int32(e.key)}
	if err := unix.EpollCtl(w.epfd, unix.EPOLL_CTL_ADD, src.fd(), &ev); err != nil {
		return fmt.Errorf("watch OOM of container %s: epoll add: %w: %w", id, err, errdefs.ErrUnavailable)
	}
	w.byID[id] = e
	w.byKey[e.key] = e
	return nil
}

// allocKeyLocked returns an epoll key no live entry uses.
func (w *Watcher) allocKeyLocked() uint32 {
	for {
		k := w.nextKey
		w.nextKey++
		if k < keyFirst {
			continue
		}
		if _, used := w.byKey[k]; !used {
			return k
		}
	}
}

// Check consumes container id's pending notification and reads its kill counter now; if the
// counter has grown past what was reported, it calls onOOM before returning, and reports
// whether it did. Use it at the init's exit: a kill is counted before its victim dies, so the
// kill is then reported before the exit, whether or not the loop has seen it yet.
// Check is a no-op for a container that is not watched.
func (w *Watcher) Check(id string) bool {
	w.mu.Lock()
	e := w.byID[id]
	w.mu.Unlock()
	if e == nil {
		return false
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.stopped {
		return false
	}
	reported, _, err := w.updateLocked(e, true)
	if err != nil {
		log.L.WithError(err).WithField("container_id", id).Warn("read OOM kill count")
	}
	return reported
}

// updateLocked consumes e's pending notification (if drain), reads its kill counter, and calls
// onOOM once if the counter has grown past what was reported. A notification that finds no
// growth makes e pending (see recheckInterval). e.mu is held.
func (w *Watcher) updateLocked(e *entry, drain bool) (reported, finished bool, err error) {
	src := e.src
	if src == nil {
		return false, true, nil
	}
	var notified bool
	var derr error
	if drain {
		notified, derr = src.drain()
	}
	kills, known, finished, rerr := src.read()
	err = errors.Join(derr, rerr)
	switch {
	case known && kills > e.reported:
		e.reported = kills
		w.setPendingLocked(e, false)
		w.onOOM(e.id)
		return true, finished, err
	case finished:
		w.setPendingLocked(e, false)
	case notified:
		w.setPendingLocked(e, true)
	}
	return false, finished, err
}

// setPendingLocked adds e to (or removes it from) the recheck set, arming the timer. e.mu is
// held.
func (w *Watcher) setPendingLocked(e *entry, on bool) {
	if !on {
		if e.tries == 0 {
			return
		}
		e.tries = 0
		w.mu.Lock()
		delete(w.pending, e)
		w.mu.Unlock()
		return
	}
	e.tries = recheckTries
	w.mu.Lock()
	defer w.mu.Unlock()
	w.pending[e] = struct{}{}
	w.armLocked()
}

// Stop stops watching container id and releases its fd. Unknown ids are ignored.
func (w *Watcher) Stop(id string) {
	w.mu.Lock()
	e := w.byID[id]
	delete(w.byID, id)
	w.mu.Unlock()
	if e == nil {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.stopped = true
	w.setPendingLocked(e, false)
	w.releaseLocked(e)
}

// releaseLocked takes e's fd out of the epoll set and closes it; e stays known to Check, which
// then has nothing to read. e.mu is held.
func (w *Watcher) releaseLocked(e *entry) {
	if e.src == nil {
		return
	}
	w.mu.Lock()
	delete(w.byKey, e.key)
	w.mu.Unlock()
	if err := unix.EpollCtl(w.epfd, unix.EPOLL_CTL_DEL, e.src.fd(), nil); err != nil && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.EBADF) {
		log.L.WithError(err).WithField("container_id", e.id).Warn("OOM watcher: epoll del")
	}
	if err := e.src.close(); err != nil {
		log.L.WithError(err).WithField("container_id", e.id).Warn("OOM watcher: close")
	}
	e.src = nil
}

// Len returns the number of watched containers.
func (w *Watcher) Len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.byID)
}

// Close stops every watch and the goroutine, and releases every fd.
func (w *Watcher) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	w.mu.Unlock()

	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	if _, err := unix.Write(w.wake, one[:]); err != nil {
		return fmt.Errorf("OOM watcher: wake: %w", err)
	}
	<-w.done

	w.mu.Lock()
	ids := make([]string, 0, len(w.byID))
	for id := range w.byID {
		ids = append(ids, id)
	}
	w.mu.Unlock()
	for _, id := range ids {
		w.Stop(id)
	}
	return errors.Join(unix.Close(w.timer), unix.Close(w.wake), unix.Close(w.epfd))
}
