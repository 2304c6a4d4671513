//go:build linux

package harness

import (
	"os"
	"syscall"
	"testing"
	"time"
)

// Crash SIGKILLs containerd, leaving its shims and containers running, and waits until it is
// gone. The `ctr events` collector dies with it: Restart starts a new one (and a new Events).
func (d *Daemon) Crash(t testing.TB) {
	t.Helper()
	if d.exited == nil {
		t.Fatalf("%s is not running", d.Spec.Name)
	}
	select {
	case <-d.exited:
		t.Fatalf("%s exited before Crash: %v", d.Spec.Name, d.exitErr)
	default:
	}
	if err := d.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("kill containerd: %v", err)
	}
	select {
	case <-d.exited:
	case <-time.After(10 * time.Second):
		t.Fatalf("containerd (pid %d) still running 10s after SIGKILL", d.cmd.Process.Pid)
	}
	if d.events != nil && d.events.Process != nil {
		_ = d.events.Process.Kill()
		_ = d.events.Wait()
	}
}

// Restart starts containerd again on the same config, root and state after Crash (the shims
// are reloaded from the task state dir), and a new `ctr events` collector in d.Events.
func (d *Daemon) Restart(t testing.TB) {
	t.Helper()
	if d.exited != nil {
		select {
		case <-d.exited:
		default:
			t.Fatalf("Restart: %s is still running (Crash it first)", d.Spec.Name)
		}
	}
	// start truncates the log: keep what the crashed daemon wrote.
	_ = os.Rename(d.logPath, d.logPath+".before-restart")
	if err := d.start(); err != nil {
		t.Fatalf("restart %s: %v%s", d.Spec.Containerd, err, d.logTail(40))
	}
	if err := d.startEvents(); err != nil {
		t.Fatalf("restart ctr events: %v", err)
	}
}
