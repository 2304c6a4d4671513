//go:build linux

package task

import (
	"context"
	"sync"
)

// tracker counts what must end before the shim exits, so that the shutdown can wait for it: the
// exit publications (an exit being published queues its event yet: Go) and the events not yet
// delivered (add, done).
type tracker struct {
	mu   sync.Mutex
	n    int           // guarded by mu
	idle chan struct{} // closed while n is 0; guarded by mu
}

// Go runs fn on a goroutine of its own, counted until it returns.
func (t *tracker) Go(fn func()) {
	t.add()
	go func() {
		defer t.done()
		fn()
	}()
}

// add counts one more; done ends it.
func (t *tracker) add() {
	t.mu.Lock()
	if t.n == 0 {
		t.idle = make(chan struct{})
	}
	t.n++
	t.mu.Unlock()
}

func (t *tracker) done() {
	t.mu.Lock()
	t.n--
	if t.n == 0 {
		close(t.idle)
	}
	t.mu.Unlock()
}

// wait returns true once no counted goroutine runs, false if ctx ends first.
func (t *tracker) wait(ctx context.Context) bool {
	t.mu.Lock()
	if t.n == 0 {
		t.mu.Unlock()
		return true
	}
	idle := t.idle
	t.mu.Unlock()
	select {
	case <-idle:
		return true
	case <-ctx.Done():
		return false
	}
}
