//go:build linux

package tune

import (
	"os"
	"os/exec"
	"runtime/debug"
	"testing"

	"github.com/custom-shim/containerd-shim-custom-v1/internal/shimtest"
)

// TestMonitorReleasesProcessHandles: children waited for through the reaper leave no pidfd
// behind (with garbage collection off, so no finalizer closes them for us).
func TestMonitorReleasesProcessHandles(t *testing.T) {
	stop := shimtest.ReapLoop()
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
