//go:build linux

package process

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"

	"github.com/custom-shim/containerd-shim-custom-v1/internal/shimtest"
)

// A process signalled through its pidfd: the signal reaches it while it lives; once it has been
// reaped, a signal is NotFound, even after its pid was given to another process (forced here with
// ns_last_pid: root only), and that other process gets nothing.
func TestSignalNeverReachesReusedPid(t *testing.T) {
	shimtest.RequireRoot(t)
	victim := exec.Command("sleep", "100")
	if err := victim.Start(); err != nil {
		t.Fatal(err)
	}
	pid := victim.Process.Pid
	e := &Exec{proc: newProc(), id: "e", cid: "c"}
	e.setPid(pid)
	e.cas(Created, Running)
	if e.pidfd < 0 {
		t.Fatal("no pidfd for a live process (kernel without pidfd_open?)")
	}
	if err := e.Kill(t.Context(), 0, false); err != nil {
		t.Fatalf("signal 0 to a live process: %v", err)
	}
	// It dies and is reaped; its exit is not recorded yet (the window the pidfd closes).
	victim.Process.Kill()
	victim.Wait()
	stranger := shimtest.StartWithPid(t, pid, 50)
	defer func() { stranger.Process.Kill(); stranger.Wait() }()
	err := e.Kill(t.Context(), uint32(unix.SIGKILL), false)
	if !errdefs.IsNotFound(err) {
		t.Fatalf("kill of a reaped process whose pid %d was reused: %v, want NotFound", pid, err)
	}
	time.Sleep(50 * time.Millisecond)
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if i := strings.LastIndexByte(string(raw), ')'); err != nil || i < 0 || i+2 >= len(raw) || raw[i+2] == 'Z' {
		t.Fatalf("the process that took pid %d was killed: %q %v", pid, raw, err)
	}
}

// Without a pidfd (a kernel before 5.3), a process marked reaped is not signalled by pid either.
func TestSignalAfterMarkReapedWithoutPidfd(t *testing.T) {
	e := &Exec{proc: newProc(), id: "e", cid: "c"}
	e.pid = os.Getpid() // would be signalled if the mark were ignored
	e.cas(Created, Running)
	if !e.MarkReaped() || e.MarkReaped() {
		t.Fatal("MarkReaped is not true exactly once")
	}
	if err := e.Kill(t.Context(), uint32(unix.SIGTERM), false); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("kill of a reaped process: %v, want NotFound", err)
	}
}
