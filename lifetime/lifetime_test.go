//go:build linux

package lifetime

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/custom-shim/containerd-shim-custom-v1/internal/shimtest"
)

// A server that serves nothing and owes nothing shuts down at once, inside ShutdownIfIdle. One
// whose service still owes its clients something (events containerd has not taken) is closing
// from then on, takes no new work, and shuts down the moment the drain is done; one whose drain
// never ends shuts down after lingerMax. A busy server does neither. (synctest: the clock is
// the bubble's.)
func TestShutdownIfIdleDrains(t *testing.T) {
	t.Run("nothing owed", func(t *testing.T) {
		sd := &shimtest.Shutdown{}
		s := New(sd)
		s.Drains(func(context.Context) bool { return true })
		s.ShutdownIfIdle()
		if sd.Calls() != 1 || !s.Closing() {
			t.Fatalf("shutdown calls %d, closing %v; want 1, true", sd.Calls(), s.Closing())
		}
	})
	t.Run("busy", func(t *testing.T) {
		sd := &shimtest.Shutdown{}
		s := New(sd)
		s.Serves(func() bool { return true })
		s.Drains(func(context.Context) bool { t.Error("drain of a busy server"); return true })
		s.ShutdownIfIdle()
		if sd.Calls() != 0 || s.Closing() {
			t.Fatalf("busy server: shutdown calls %d, closing %v", sd.Calls(), s.Closing())
		}
	})
	t.Run("owed, then delivered", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			sd := &shimtest.Shutdown{}
			s := New(sd)
			delivered := make(chan struct{})
			s.Drains(func(ctx context.Context) bool {
				select {
				case <-delivered:
					return true
				case <-ctx.Done():
					return false
				}
			})
			s.ShutdownIfIdle()
			time.Sleep(10 * time.Second) // containerd away
			synctest.Wait()
			if sd.Calls() != 0 {
				t.Fatal("shut down with events owed")
			}
			if !s.Closing() {
				t.Fatal("not closing while it drains")
			}
			if _, err := s.Reserve(); err == nil {
				t.Fatal("new work taken while draining")
			}
			s.ShutdownIfIdle() // a second decision changes nothing
			close(delivered)
			synctest.Wait()
			if sd.Calls() != 1 {
				t.Fatalf("shutdown calls %d after the drain, want 1", sd.Calls())
			}
		})
	})
	t.Run("owed, never delivered", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			sd := &shimtest.Shutdown{}
			s := New(sd)
			s.Drains(func(ctx context.Context) bool { <-ctx.Done(); return false })
			start := time.Now()
			s.ShutdownIfIdle()
			time.Sleep(lingerMax - time.Millisecond)
			synctest.Wait()
			if sd.Calls() != 0 {
				t.Fatalf("shut down after %s, before lingerMax", time.Since(start))
			}
			time.Sleep(time.Millisecond)
			synctest.Wait()
			if sd.Calls() != 1 {
				t.Fatalf("shutdown calls %d at lingerMax, want 1", sd.Calls())
			}
		})
	})
}
