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
	tr := newTrimmerFunc(func() { n.Add(1) })
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
