//go:build linux

package task

import (
	"sync"
	"time"
)

// Bounds of the wait for requests in flight when the shim shuts down (inflight.wait).
const (
	// answerGrace is how long no request may have been in flight before the shim exits: a
	// handler's return is not yet its answer on the wire (ttrpc writes it from another
	// goroutine), and a request that was on its way when the Shutdown was answered gets served.
	answerGrace = 20 * time.Millisecond
	// answerWaitMax bounds the whole wait; pkg/shim gives the shutdown callbacks 5 s.
	answerWaitMax = 2 * time.Second
)

// inflight counts the requests being served, so that the shim does not exit before answering
// them. containerd sends Shutdown after a Delete succeeded; a second Delete of the same task on
// the same connection (CRI's exit monitor beside a failed RunPodSandbox's cleanup) was answered
// "ttrpc: closed" when the shim exited first, and CRI then kept the pod as SANDBOX_UNKNOWN.
type inflight struct {
	mu   sync.Mutex
	n    int       // requests being served; guarded by mu
	last time.Time // when the last request was answered; guarded by mu
}

func (f *inflight) begin() {
	f.mu.Lock()
	f.n++
	f.mu.Unlock()
}

func (f *inflight) end() {
	f.mu.Lock()
	f.n--
	f.last = time.Now()
	f.mu.Unlock()
}

// quiet reports whether no request has been in flight for grace.
func (f *inflight) quiet(grace time.Duration) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n == 0 && time.Since(f.last) >= grace
}

// wait returns once no request has been in flight for grace, or after limit. It polls: it runs
// once, at shutdown.
func (f *inflight) wait(grace, limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	for !f.quiet(grace) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(time.Millisecond)
	}
	return true
}
