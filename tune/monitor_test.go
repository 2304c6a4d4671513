//go:build linux

package tune

import (
	"os"
	"os/exec"
	"os/signal"
	"runtime/debug"
	"syscall"
	"testing"

	"github.com/containerd/containerd/v2/pkg/sys/reaper"
)

// TestMonitorReleasesProcessHandles: children waited for through the reaper leave no pidfd
// behind (with garbage collection off, so no finalizer closes them for us).
func TestMonitorReleasesProcessHandles(t *testing.T) {
	stop := reapLoop()
	defer stop()
	defer debug.SetGCPercent(debug.SetGCPercent(-1))

	m := NewMonitor()
	run := func() {
		cmd := exec.Command("/bin/true")
		ec, err := m.Start(cmd)
		if err != nil {
			t.Fatal(err)
		}
		if status, err := m.Wait(cmd, ec); err != nil || status != 0 {
			t.Fatalf("wait: %d, %v", status, err)
		}
	}
	run() // first use may open descriptors that stay (signal pipes, epoll)
	before := fdCount(t)
	for range 20 {
		run()
	}
	if after := fdCount(t); after > before {
		t.Fatalf("open descriptors went from %d to %d after 20 children", before, after)
	}
}

func fdCount(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// reapLoop does what pkg/shim's signal loop does: reap children on SIGCHLD. It returns a stop.
func reapLoop() func() {
	sigs := make(chan os.Signal, 32)
	signal.Notify(sigs, syscall.SIGCHLD)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-sigs:
				_ = reaper.Reap()
			case <-done:
				return
			}
		}
	}()
	return func() {
		signal.Stop(sigs)
		close(done)
	}
}
