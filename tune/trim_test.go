//go:build linux

package tune

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// A burst of requests costs one trim, trimDelay after the last of them; nothing after stop.
func TestTrimmerRunsOnceAfterABurst(t *testing.T) {
	var n atomic.Int32
	tr := newTrimmerFunc(func(bool) bool { n.Add(1); return true })
	for range 5 {
		tr.After()
		time.Sleep(trimDelay / 4)
	}
	if got := n.Load(); got != 0 {
		t.Fatalf("%d trims during the burst, want none", got)
	}
	time.Sleep(trimDelay * 2)
	if got := n.Load(); got != 1 {
		t.Fatalf("%d trims after the burst, want 1", got)
	}
	tr.After()
	tr.Stop()
	time.Sleep(trimDelay * 2)
	if got := n.Load(); got != 1 {
		t.Fatalf("%d trims after stop, want still 1", got)
	}
	var none *Trimmer // a service built without one (unit tests) must not crash
	none.After()
	none.Stop()
}

// A trim that must wait (a runc child was alive, so no thread could end) runs again by itself,
// as a retry (no heap trim), later each time, until it is done or the Trimmer is stopped; the
// next request makes the next trim a full one again.
func TestTrimmerRetriesUntilDone(t *testing.T) {
	var mu sync.Mutex
	var calls []bool // retry flag of each trim
	record := func(done int) func(bool) bool {
		return func(retry bool) bool {
			mu.Lock()
			defer mu.Unlock()
			calls = append(calls, retry)
			return len(calls) >= done
		}
	}
	got := func() []bool {
		mu.Lock()
		defer mu.Unlock()
		return append([]bool(nil), calls...)
	}
	// Retries at trimDelay, then 2×: done at the third call, about 4 trimDelays in.
	tr := newTrimmerFunc(record(3))
	time.Sleep(trimDelay*4 + trimDelay/2)
	if c := got(); len(c) != 3 || c[0] || !c[1] || !c[2] {
		t.Fatalf("trims (retry flags) %v, want [false true true]", c)
	}
	tr.After()
	time.Sleep(trimDelay + trimDelay/2)
	if c := got(); len(c) != 4 || c[3] {
		t.Fatalf("trims (retry flags) %v, want a fourth, full one after a request", c)
	}
	tr.Stop()

	var m atomic.Int32
	tr = newTrimmerFunc(func(bool) bool { m.Add(1); return false })
	time.Sleep(trimDelay + trimDelay/2)
	tr.Stop()
	after := m.Load()
	time.Sleep(trimDelay * 3)
	if n := m.Load(); after == 0 || n != after {
		t.Fatalf("trims: %d when stopped, %d later; want at least one, then none", after, n)
	}
}

// Retries back off to trimRetryMax: a child that is never waited for must not keep an idle shim
// waking up every trimDelay.
func TestTrimmerRetriesBackOff(t *testing.T) {
	var m atomic.Int32
	tr := newTrimmerFunc(func(bool) bool { m.Add(1); return false })
	defer tr.Stop()
	// Trims at 1, 2, 4, 8 trimDelays (0.2, 0.4, 0.8, 1.6 s): 4 within 2 s, where a fixed
	// trimDelay would make 10.
	time.Sleep(2 * time.Second)
	if n := m.Load(); n < 3 || n > 5 {
		t.Fatalf("%d trims in 2 s, want about 4 (backing off)", n)
	}
}
