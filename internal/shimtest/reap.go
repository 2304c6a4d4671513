//go:build linux

package shimtest

import (
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"testing"

	"github.com/containerd/containerd/v2/pkg/sys/reaper"
	"golang.org/x/sys/unix"
)

// ReapLoop does what pkg/shim's signal loop does in the shim: reap every child on SIGCHLD
// through reaper.Reap, so that children started through reaper.Default are waited for as in
// production. It returns its stop.
func ReapLoop() (stop func()) {
	sigs := make(chan os.Signal, 32)
	signal.Notify(sigs, unix.SIGCHLD)
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

// StartWithPid starts `sleep 100` as a host process with pid, which must be free:
// ns_last_pid set to pid-1 just before the fork (as CRIU restores pids). Another fork on the
// host may take the pid first, so it tries up to tries times. Needs root.
func StartWithPid(t testing.TB, pid, tries int) *exec.Cmd {
	t.Helper()
	for range tries {
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
		_ = c.Process.Kill()
		_ = c.Wait()
	}
	t.Fatalf("could not start a process with pid %d", pid)
	return nil
}
