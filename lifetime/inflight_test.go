//go:build linux

package lifetime

import (
	"context"
	"testing"
	"testing/synctest"
	"time"
)

// The shutdown waits for the requests in flight to be answered, then for a short quiet time; it
// gives up after its bound, or when its context ends. (synctest: the clock is the bubble's.)
func TestInflightWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		var f inflight
		if !f.wait(ctx, 0, time.Second) {
			t.Fatal("wait with nothing in flight did not return at once")
		}
		f.begin()
		done := make(chan bool, 1)
		go func() { done <- f.wait(ctx, 20*time.Millisecond, 5*time.Second) }()
		time.Sleep(time.Second)
		synctest.Wait()
		select {
		case <-done:
			t.Fatal("wait returned while a request was in flight")
		default:
		}
		ended := time.Now()
		f.end()
		if !<-done {
			t.Fatal("wait gave up")
		}
		if since := time.Since(ended); since != 20*time.Millisecond {
			t.Fatalf("wait returned %s after the last answer, want the 20 ms grace", since)
		}
		f.begin()
		start := time.Now()
		if f.wait(ctx, 0, 30*time.Millisecond) || time.Since(start) != 30*time.Millisecond {
			t.Fatal("wait with a request that never ends did not give up after its bound")
		}
		cctx, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
		defer cancel()
		if f.wait(cctx, 0, time.Minute) || time.Since(start) != 40*time.Millisecond {
			t.Fatal("wait did not give up when its context ended")
		}
	})
}
