//go:build linux

package task

import (
	"sync/atomic"
	"testing"
	"time"
)

// A burst of requests costs one trim, trimDelay after the last of them; nothing after stop.
func TestTrimmerRunsOnceAfterABurst(t *testing.T) {
	var n atomic.Int32
	tr := newTrimmerFunc(func() bool { n.Add(1); return true })
	for range 5 {
		tr.after()
		time.Sleep(trimDelay / 4)
	}
	if got := n.Load(); got != 0 {
		t.Fatalf("%d trims during the burst, want none", got)
	}
	time.Sleep(trimDelay * 2)
	if got := n.Load(); got != 1 {
		t.Fatalf("%d trims after the burst, want 1", got)
	}
	tr.after()
	tr.stop()
	time.Sleep(trimDelay * 2)
	if got := n.Load(); got != 1 {
		t.Fatalf("%d trims after stop, want still 1", got)
	}
	var none *trimmer // a service built without one (unit tests) must not crash
	none.after()
	none.stop()
}

// A trim that must wait (a runc child was alive, so no thread could end) runs again by itself,
// until it is done or the trimmer is stopped.
func TestTrimmerRetriesUntilDone(t *testing.T) {
	var n atomic.Int32
	tr := newTrimmerFunc(func() bool { return n.Add(1) >= 3 })
	time.Sleep(trimDelay*4 + trimDelay/2)
	if got := n.Load(); got != 3 {
		t.Fatalf("%d trims, want 3 (two retries, then done)", got)
	}
	tr.stop()

	var m atomic.Int32
	tr = newTrimmerFunc(func() bool { m.Add(1); return false })
	time.Sleep(trimDelay + trimDelay/2)
	tr.stop()
	after := m.Load()
	time.Sleep(trimDelay * 3)
	if got := m.Load(); after == 0 || got != after {
		t.Fatalf("trims: %d when stopped, %d later; want at least one, then none", after, got)
	}
}
