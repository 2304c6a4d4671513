//go:build linux

package process

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
)

// A process signalled through its pidfd: the signal reaches it while it lives; once it has been
// reaped, a signal is NotFound, even after its pid was given to another process (forced here with
// ns_last_pid: root only), and that other process gets nothing.
func TestSignalNeverReachesReusedPid(t *testing.T) {
	requireRoot(t)
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
	stranger := takePid(t, pid)
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

// takePid starts a process with pid, free again: ns_last_pid set to pid-1 just before the fork
// (the way CRIU restores pids). Another fork on the host may take it first: tried a few times.
func takePid(t *testing.T, pid int) *exec.Cmd {
	t.Helper()
	for range 50 {
		if err := os.WriteFile("/proc/sys/kernel/ns_last_pid", []byte(strconv.Itoa(pid-1)), 0); err != nil {
			t.Fatalf("set ns_last_pid: %v", err)
		}
		c := exec.Command("sleep", "100")
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		if c.Process.Pid == pid {
			return c
		}
		c.Process.Kill()
		c.Wait()
	}
	t.Fatalf("could not start a process with pid %d", pid)
	return nil
}

// requireRoot gates tests that need root: ROOT_TESTS=1 (make root-test).
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Getenv("ROOT_TESTS") != "1" {
		t.Skip("needs ROOT_TESTS=1 (make root-test)")
	}
	if os.Geteuid() != 0 {
		t.Fatal("ROOT_TESTS=1 but not root")
	}
}
