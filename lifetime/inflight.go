//go:build linux

package lifetime

import (
	"context"
	"sync"
	"time"
)

// Bounds of the wait for requests in flight when the shim shuts down (inflight.wait).
const (
	// answerGrace is how long no request may have been in flight before the shim exits: a
	// handler's return is not yet its answer on the wire (ttrpc writes it from another
	// goroutine), and a request that was on its way when the Shutdown was answered gets served.
	answerGrace = 20 * time.Millisecond
	// answerWaitMax bounds the whole wait. pkg/shutdown would give the shutdown callbacks 30 s,
	// but pkg/shim's run returns (and the shim exits) 5 s after the shutdown began, whatever is
	// left; containerd waits 3 s for a Shutdown's answer, not for the exit.
	answerWaitMax = 2 * time.Second
)

// inflight counts the requests being served, so that the shim does not exit before answering
// them. containerd sends Shutdown after a Delete succeeded; a second Delete of the same task on
// the same connection (CRI's exit monitor beside a failed RunPodSandbox's cleanup) was answered
// "ttrpc: closed" when the shim exited first, and CRI then kept the pod as SANDBOX_UNKNOWN.
type inflight struct {
	mu   sync.Mutex
	n    int           // requests being served; guarded by mu
	last time.Time     // when the last request was answered; guarded by mu
	idle chan struct{} // closed while n is 0, a new one from the moment n rises; guarded by mu
}

func (f *inflight) begin() {
	f.mu.Lock()
	if f.n == 0 {
		f.idle = make(chan struct{})
	}
	f.n++
	f.mu.Unlock()
}

func (f *inflight) end() {
	f.mu.Lock()
	f.n--
	f.last = time.Now()
	if f.n == 0 {
		close(f.idle)
	}
	f.mu.Unlock()
}

// wait returns true once no request has been in flight for grace, false after limit or when
// ctx ends. It sleeps until the last answer is grace old, or until the requests in flight are
// answered: it does not poll.
func (f *inflight) wait(ctx context.Context, grace, limit time.Duration) bool {
	t := time.NewTimer(limit)
	defer t.Stop()
	for {
		f.mu.Lock()
		busy, idle := f.n > 0, f.idle
		rest := grace - time.Since(f.last)
		f.mu.Unlock()
		var wake <-chan time.Time
		switch {
		case busy:
		case rest <= 0:
			return true
		default:
			wake = time.After(rest)
		}
		if !busy {
			idle = nil // closed: wait for the grace instead
		}
		select {
		case <-idle:
		case <-wake:
		case <-t.C:
			return false
		case <-ctx.Done():
			return false
		}
	}
}
