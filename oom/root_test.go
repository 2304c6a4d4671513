//go:build linux

package oom

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/containerd/cgroups/v3"

	"github.com/custom-shim/containerd-shim-custom-v1/internal/shimtest"
)

// requireRootV1 gates the tests that make real cgroup v1 memory cgroups: ROOT_TESTS=1 (the
// Makefile's root-test target), root, and a v1 memory hierarchy.
func requireRootV1(t *testing.T) string {
	t.Helper()
	shimtest.RequireRoot(t)
	if cgroups.Mode() == cgroups.Unified {
		t.Skip("cgroup v2 host: no v1 memory hierarchy")
	}
	root := "/sys/fs/cgroup/memory"
	if _, err := os.Stat(filepath.Join(root, "cgroup.event_control")); err != nil {
		t.Fatalf("ROOT_TESTS=1 on a cgroup v1 host without %s: %v", root, err)
	}
	return root
}

// memcg makes a memory cgroup with a limit under root, removed when the test ends.
func memcg(t *testing.T, root, name string, limit int64) string {
	t.Helper()
	dir := filepath.Join(root, name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rmdirCgroup(t, dir) })
	if limit > 0 {
		if err := os.WriteFile(filepath.Join(dir, "memory.limit_in_bytes"), fmt.Appendf(nil, "%d", limit), 0); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func rmdirCgroup(t *testing.T, dir string) {
	t.Helper()
	if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Errorf("remove cgroup %s: %v", dir, err)
	}
}

// runOOM runs a process in the memory cgroup dir that allocates until the OOM killer kills it
// (tail of an endless line buffers it all), and returns its wait status.
func runOOM(t *testing.T, dir string) syscall.WaitStatus {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-c", `echo $$ > "$1/cgroup.procs" && exec tail /dev/zero`, "sh", dir)
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("OOM process: want it killed, got %v", err)
	}
	return ee.Sys().(syscall.WaitStatus)
}

// B.17/B.19 on a real v1 memory cgroup: an OOM kill is reported, once, and a Check made after
// the victim was reaped finds it already reported or reports it then: never lost.
func TestRootV1OOMKill(t *testing.T) {
	root := requireRootV1(t)
	dir := memcg(t, root, fmt.Sprintf("oomtest-%d-kill", os.Getpid()), 16<<20)
	r := newRecorder()
	w := newTestWatcher(t, V1, r)
	if err := w.AddDir("c1", dir); err != nil {
		t.Fatal(err)
	}
	ws := runOOM(t, dir)
	if !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("process not SIGKILLed: %v", ws)
	}
	w.Check("c1") // at "exit", as the task service does
	if n := r.count("c1"); n != 1 {
		t.Fatalf("callbacks after the reaped OOM kill and Check: %d, want 1", n)
	}
	w.Stop("c1")
	if w.Len() != 0 {
		t.Fatalf("Len after Stop: %d", w.Len())
	}
}

// Removing a watched v1 cgroup signals its eventfd: the watch releases its fd by itself.
func TestRootV1RemovedCgroupReleases(t *testing.T) {
	root := requireRootV1(t)
	dir := memcg(t, root, fmt.Sprintf("oomtest-%d-rm", os.Getpid()), 0)
	r := newRecorder()
	w := newTestWatcher(t, V1, r)
	if err := w.AddDir("c1", dir); err != nil {
		t.Fatal(err)
	}
	rmdirCgroup(t, dir)
	waitFor(t, "fd released after rmdir", func() bool { return w.released("c1") })
	w.Stop("c1")
	if r.count("c1") != 0 {
		t.Fatal("removal reported as a kill")
	}
}

// B.20: create and delete the "same container" 1000 times (a fresh memory cgroup each time,
// watched, stopped, removed): no entry or fd is left, and the OOM on the 1000th still fires.
func TestRootV1Cycles(t *testing.T) {
	root := requireRootV1(t)
	r := newRecorder()
	w := newTestWatcher(t, V1, r)
	base := shimtest.OpenFDs(t)
	const cycles = 1000
	for i := 1; i <= cycles; i++ {
		dir := filepath.Join(root, fmt.Sprintf("oomtest-%d-cycle", os.Getpid()))
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatalf("cycle %d: %v", i, err)
		}
		if err := w.AddDir("same-id", dir); err != nil {
			rmdirCgroup(t, dir)
			t.Fatalf("cycle %d: %v", i, err)
		}
		if i == cycles {
			if err := os.WriteFile(filepath.Join(dir, "memory.limit_in_bytes"), []byte("16777216"), 0); err != nil {
				t.Fatal(err)
			}
			runOOM(t, dir)
			r.wait(t, "same-id")
		}
		w.Stop("same-id")
		rmdirCgroup(t, dir)
	}
	if w.Len() != 0 {
		t.Fatalf("Len after %d cycles: %d", cycles, w.Len())
	}
	if now := shimtest.OpenFDs(t); now != base {
		t.Fatalf("open fds: %d before, %d after %d cycles", base, now, cycles)
	}
	if n := r.count("same-id"); n != 1 {
		t.Fatalf("callbacks: %d, want 1", n)
	}
}
