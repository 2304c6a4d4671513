//go:build linux

package pod

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"

	"github.com/custom-shim/containerd-shim-custom-v1/internal/shimtest"
)

// hostPod is a pod with every namespace the host's but its holder's own mount namespace (the
// one privilege it needs: CAP_SYS_ADMIN for CLONE_NEWNS and its mounts).
func hostPod(t *testing.T) *Pod {
	t.Helper()
	shimtest.RequireRoot(t)
	return newPod(t, Options{ID: "host-pod", Bundle: t.TempDir(), Config: &Config{Network: ModeNode, IPC: ModeNode, PID: ModeNode}})
}

// newPod is New(o), released when the test ends.
func newPod(t *testing.T, o Options) *Pod {
	t.Helper()
	p, err := New(o)
	if err != nil {
		t.Fatalf("new pod %s: %v", o.ID, err)
	}
	t.Cleanup(func() { _ = p.Release(context.Background()) })
	return p
}

// startedPod is newPod, started; it returns the pod and its holder's pid.
func startedPod(t *testing.T, o Options) (*Pod, int) {
	t.Helper()
	p := newPod(t, o)
	if err := p.Start(t.Context()); err != nil {
		t.Fatalf("start pod %s: %v", o.ID, err)
	}
	return p, p.Status().Pid
}

func waitDone(t *testing.T, p *Pod) {
	t.Helper()
	select {
	case <-p.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("pod not stopped")
	}
}

// Created → Ready → Stopped: a second Start is FailedPrecondition, Stop closes Done with exit
// status 0 and is idempotent, Release after Stop removes the files.
func TestLifecycle(t *testing.T) {
	ctx := t.Context()
	p := hostPod(t)
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	st := p.Status()
	if st.State != Ready || st.Pid <= 0 || !st.ExitedAt.IsZero() {
		t.Fatalf("status %+v", st)
	}
	if err := p.Start(ctx); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("second start: %v", err)
	}
	select {
	case <-p.Done():
		t.Fatal("done while ready")
	default:
	}
	for range 2 {
		if err := p.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		select {
		case <-p.Done():
		default:
			t.Fatal("Stop returned before Done closed")
		}
	}
	st = p.Status()
	if st.State != Stopped || st.ExitCode != 0 || st.ExitedAt.IsZero() || st.Pid <= 0 {
		t.Fatalf("status %+v", st)
	}
	if err := unix.Kill(st.Pid, 0); !errors.Is(err, unix.ESRCH) {
		t.Fatalf("holder %d still there: %v", st.Pid, err)
	}
	if err := p.Start(ctx); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("start after stop: %v", err)
	}
	for range 2 {
		if err := p.Release(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if left, _ := os.ReadDir(p.bundle); len(left) != 0 {
		t.Fatalf("left in the bundle: %v", left)
	}
}

// A pod never started stops too: Stopped, Done closed, and it cannot start any more.
func TestStopNeverStarted(t *testing.T) {
	p := hostPod(t)
	if err := p.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitDone(t, p)
	if st := p.Status(); st.State != Stopped || st.Pid != 0 || st.ExitedAt.IsZero() {
		t.Fatalf("status %+v", st)
	}
	if err := p.Start(t.Context()); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("start: %v", err)
	}
}

// A holder killed behind the shim's back: the pod is Stopped with status 128+9 and Done closed;
// Stop and Release then just clean up.
func TestHolderKilled(t *testing.T) {
	p := hostPod(t)
	if err := p.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := unix.Kill(p.Status().Pid, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitDone(t, p)
	if st := p.Status(); st.State != Stopped || st.ExitCode != 128+int(unix.SIGKILL) {
		t.Fatalf("status %+v", st)
	}
	if err := p.Release(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(p.bundle, hostsFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("hosts: %v", err)
	}
}

// A holder that does not read its pipe (stopped with SIGSTOP) is killed after
// holderExitTimeout; a Stop whose context ends first returns the context's error, and a later
// Stop finishes the job.
func TestStopStoppedHolder(t *testing.T) {
	p := hostPod(t)
	if err := p.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	pid := p.Status().Pid
	if err := unix.Kill(pid, unix.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if err := p.Stop(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("stop with a short context: %v", err)
	}
	start := time.Now()
	if err := p.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	if st := p.Status(); st.State != Stopped || st.ExitCode != 128+int(unix.SIGKILL) {
		t.Fatalf("status %+v after %v", st, time.Since(start))
	}
}

// Concurrent Stops and Status calls (for -race).
func TestConcurrentStop(t *testing.T) {
	p := hostPod(t)
	if err := p.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			_ = p.Status()
			errs <- p.Stop(context.Background())
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	waitDone(t, p)
}
