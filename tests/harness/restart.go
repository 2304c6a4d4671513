//go:build linux

package harness

import (
	"errors"
	"os"
	"path/filepath"
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

// RestartOnNewTTRPC is Restart with containerd's ttrpc socket moved to a new path, after Crash.
// The shims started before keep publishing to the old path, where nothing listens until the
// caller calls the returned connect (a symlink old → new). So a test can subscribe to the
// restarted daemon first and then let the events shims held during the outage through, and
// cannot miss one that a shim delivers the moment containerd listens again.
func (d *Daemon) RestartOnNewTTRPC(t testing.TB) (connect func()) {
	t.Helper()
	old := d.ttrpcAddress()
	d.movedTTRPC = true
	if err := os.WriteFile(filepath.Join(d.Dir, "config.toml"), []byte(d.config()), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(old); err != nil && !errors.Is(err, os.ErrNotExist) { // the crashed daemon's socket
		t.Fatal(err)
	}
	d.Restart(t)
	return func() {
		if err := os.Symlink(d.ttrpcAddress(), old); err != nil {
			t.Fatalf("connect the old ttrpc address: %v", err)
		}
	}
}
