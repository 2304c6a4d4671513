//go:build linux

package task

import (
	"sync"

	runc "github.com/containerd/go-runc"

	"github.com/custom-shim/containerd-shim-custom-v1/process"
)

// routed is a live process and the container it belongs to.
type routed struct {
	c    *container
	p    process.Process
	init bool // p is the container's init
}

// exitRouter matches reaped exits to the processes the shim started, including exits that
// arrive before the start RPC has learnt the pid.
type exitRouter struct {
	mu      sync.Mutex
	running map[int][]routed          // pid → live processes; guarded by mu
	windows map[*startWindow]struct{} // open windows; guarded by mu
}

// startWindow captures every exit that happens while a process is being created or started.
type startWindow struct {
	r     *exitRouter
	exits []runc.Exit // guarded by r.mu
}

func newExitRouter() *exitRouter {
	return &exitRouter{running: map[int][]routed{}, windows: map[*startWindow]struct{}{}}
}

// Open opens a window before an OCI runtime create/start/exec. If hold is given (an init
// being started), it is taken out of the running set so that its exit is captured by the
// window and handled after the start event is published.
func (r *exitRouter) Open(hold *routed) *startWindow {
	r.mu.Lock()
	defer r.mu.Unlock()
	if hold != nil {
		r.forgetLocked(*hold)
	}
	w := &startWindow{r: r}
	r.windows[w] = struct{}{}
	return w
}

// Close closes the window. If the window saw the exit of rp's pid, that exit is returned for
// the caller to handle (after publishing the start event); otherwise rp is registered as
// running. A nil rp or a process without a pid just closes the window.
func (w *startWindow) Close(rp *routed) (runc.Exit, bool) {
	r := w.r
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.windows, w)
	if rp == nil {
		return runc.Exit{}, false
	}
	pid := rp.p.Pid()
	if pid == 0 {
		return runc.Exit{}, false
	}
	for _, e := range w.exits {
		if e.Pid == pid {
			return e, true
		}
	}
	r.running[pid] = append(r.running[pid], *rp)
	return runc.Exit{}, false
}

// Route unregisters and returns the processes an exit belongs to; open windows get a copy.
func (r *exitRouter) Route(e runc.Exit) []routed {
	r.mu.Lock()
	defer r.mu.Unlock()
	for w := range r.windows {
		w.exits = append(w.exits, e)
	}
	ps := r.running[e.Pid]
	delete(r.running, e.Pid)
	return ps
}

func (r *exitRouter) forgetLocked(rp routed) {
	pid := rp.p.Pid()
	list := r.running[pid]
	for i, x := range list {
		if x.p == rp.p {
			list = append(list[:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(r.running, pid)
	} else {
		r.running[pid] = list
	}
}

// exitQueue decouples the reaper, which waits on slow subscribers, from exit handling:
// push never blocks, pop returns exits in order.
type exitQueue struct {
	mu     sync.Mutex
	items  []runc.Exit
	ready  chan struct{} // cap 1: something to pop
	closed bool
}

func newExitQueue() *exitQueue { return &exitQueue{ready: make(chan struct{}, 1)} }

func (q *exitQueue) push(e runc.Exit) {
	q.mu.Lock()
	q.items = append(q.items, e)
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// close makes pop return false once the queue is drained.
func (q *exitQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// pop blocks until there are exits and returns all of them; false once closed and empty.
func (q *exitQueue) pop() ([]runc.Exit, bool) {
	for {
		q.mu.Lock()
		items, closed := q.items, q.closed
		q.items = nil
		q.mu.Unlock()
		if len(items) > 0 {
			return items, true
		}
		if closed {
			return nil, false
		}
		<-q.ready
	}
}
