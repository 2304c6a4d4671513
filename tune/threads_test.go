//go:build linux

package tune

import (
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/custom-shim/containerd-shim-custom-v1/internal/shimtest"
)

// spikeThreads makes the Go runtime start OS threads: n goroutines block in a system call at
// the same time while the others wait to run, so each blocked one has its processor handed to
// another thread. It returns the thread count seen while they were blocked.
func spikeThreads(t *testing.T, n int) int {
	t.Helper()
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			ts := syscall.Timespec{Nsec: int64(100 * time.Millisecond)}
			_ = syscall.Nanosleep(&ts, nil)
		}()
	}
	close(start)
	time.Sleep(50 * time.Millisecond)
	peak := ThreadCount()
	wg.Wait()
	return peak
}

// threadsDownTo waits (up to 2 s) for the thread count to fall to want; ended threads leave
// /proc a moment after the goroutine that ended them returns.
func threadsDownTo(want int) int {
	got := ThreadCount()
	for deadline := time.Now().Add(2 * time.Second); got > want && time.Now().Before(deadline); got = ThreadCount() {
		time.Sleep(10 * time.Millisecond)
	}
	return got
}

// settledThreads spikes the thread count, ends every thread it can and returns what is left: the
// threads the process needs (the race detector, for one, starts a thread of its own on first use).
func settledThreads(t *testing.T) int {
	t.Helper()
	spikeThreads(t, 20)
	EndIdleThreads(1)
	time.Sleep(100 * time.Millisecond)
	return ThreadCount()
}

// After a burst of blocking calls the runtime keeps its extra threads; EndIdleThreads ends
// them, down to the count asked for.
func TestEndIdleThreadsReturnsToKeep(t *testing.T) {
	if ThreadCount() == 0 {
		t.Fatal("cannot read the thread count from /proc/self/status")
	}
	keep := settledThreads(t)
	peak := spikeThreads(t, 20)
	if peak < keep+10 {
		t.Fatalf("the spike made %d threads from %d: the test does not load the runtime as meant", peak, keep)
	}
	if kept := ThreadCount(); kept < keep+10 {
		t.Fatalf("the runtime gave its threads back by itself (%d, baseline %d): nothing left to test", kept, keep)
	}
	if ended, ok := EndIdleThreads(keep); !ok || ended < 10 {
		t.Fatalf("ended %d threads, want at least 10", ended)
	}
	if got := threadsDownTo(keep); got > keep {
		t.Fatalf("%d threads after EndIdleThreads(%d) (peak %d)", got, keep, peak)
	}
	// The runtime still works on what is left: it starts threads again as needed.
	if peak := spikeThreads(t, 20); peak < keep+10 {
		t.Fatalf("second spike made %d threads from %d", peak, keep)
	}
	EndIdleThreads(keep)
}

// A runc child is started with a parent-death signal, which Linux sends when the forking thread
// ends: while such a child is alive no thread is ended, and the child lives on.
func TestEndIdleThreadsSparesThreadsOfLiveChildren(t *testing.T) {
	stop := shimtest.ReapLoop()
	defer stop()
	keep := settledThreads(t)
	m := NewMonitor()
	cmd := exec.Command("/bin/sleep", "30")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	ec, err := m.StartLocked(cmd)
	if err != nil {
		t.Fatal(err)
	}
	spikeThreads(t, 20)
	if ended, ok := EndIdleThreads(keep); ended != 0 || ok {
		t.Fatalf("ended %d threads (ok %v) while a child with a parent-death signal was alive", ended, ok)
	}
	time.Sleep(100 * time.Millisecond)
	if err := cmd.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("child gone: %v", err)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if status, err := m.Wait(cmd, ec); err != nil || status != 128+int(syscall.SIGTERM) {
		t.Fatalf("wait: %d, %v; want the SIGTERM status", status, err)
	}
	if ended, ok := EndIdleThreads(keep); ended == 0 || !ok {
		t.Fatalf("ended %d threads (ok %v) once the child was waited for", ended, ok)
	}
	if got := threadsDownTo(keep); got > keep {
		t.Fatalf("%d threads after EndIdleThreads(%d)", got, keep)
	}
}

// A failed start is not counted as a live child.
func TestEndIdleThreadsAfterFailedStart(t *testing.T) {
	m := NewMonitor()
	if _, err := m.Start(exec.Command("/nonexistent/runc")); err == nil {
		t.Fatal("start of a missing binary succeeded")
	}
	keep := settledThreads(t)
	spikeThreads(t, 20)
	if ended, ok := EndIdleThreads(keep); ended == 0 || !ok {
		t.Fatalf("ended %d threads (ok %v) after a failed start: it was counted as a live child", ended, ok)
	}
}
