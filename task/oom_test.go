//go:build linux

package task

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	eventstypes "github.com/containerd/containerd/api/events"
	"github.com/containerd/containerd/v2/core/runtime"
	runc "github.com/containerd/go-runc"

	"github.com/custom-shim/containerd-shim-custom-v1/oom"
)

// fakeCgroupV2 writes the two files a cgroup v2 OOM watch reads (inotify works on regular
// files, so the real watcher runs against them).
func fakeCgroupV2(t *testing.T, dir string, kills int) {
	t.Helper()
	mem := fmt.Sprintf("low 0\nhigh 0\nmax %d\noom %d\noom_kill %d\n", kills, kills, kills)
	if err := os.WriteFile(filepath.Join(dir, "memory.events"), []byte(mem), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "cgroup.events"), []byte("populated 1\nfrozen 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// B.19: a kill counted just before the init's exit is handled is published before the exit,
// whether the watcher's goroutine saw it first or the synchronous check at exit did; and it is
// published once. 50 containers, to let both paths win some.
func TestOOMPublishedBeforeInitExit(t *testing.T) {
	rec := &recorder{}
	s := &service{events: newEventQueue(), router: newExitRouter()}
	w, err := oom.NewMode(oom.V2, func(id string) { s.events.send(&eventstypes.TaskOOM{ContainerID: id}) })
	if err != nil {
		t.Fatal(err)
	}
	s.oom = &oomEvents{w: w}
	defer s.oom.close()
	go s.events.forward(context.Background(), rec)

	const n = 50
	dirs := make([]string, n)
	for i := range n {
		dirs[i] = t.TempDir()
		fakeCgroupV2(t, dirs[i], 0)
		if err := w.AddDir(fmt.Sprintf("c%d", i), dirs[i]); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		id := fmt.Sprintf("c%d", i)
		fakeCgroupV2(t, dirs[i], 1) // the kernel counts the kill, then the init dies
		c := &container{id: id}
		p := newFake(id, 100+i)
		s.handleExit(routed{c: c, p: p, init: true}, runc.Exit{Pid: 100 + i, Status: 137})
		<-p.Done()        // published
		s.oom.release(id) // Delete
	}
	s.events.closeAndFlush()

	if w.Len() != 0 {
		t.Fatalf("watches left after release: %d", w.Len())
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	// Per container: exactly [oom, exit]; events of different containers may interleave only
	// as the loop allows, so check pairwise order by position.
	var ooms, exits int
	for i, topic := range rec.topics {
		switch topic {
		case runtime.TaskOOMEventTopic:
			ooms++
		case runtime.TaskExitEventTopic:
			exits++
			if ooms < exits {
				t.Fatalf("exit #%d published before its OOM: %v", exits, rec.topics[:i+1])
			}
		}
	}
	if ooms != n || exits != n {
		t.Fatalf("published %d OOM and %d exit events, want %d of each: %v", ooms, exits, n, rec.topics)
	}
}

// Without a watcher (a host without cgroups, or a service built without one) the hooks do
// nothing.
func TestOOMEventsNil(_ *testing.T) {
	var o *oomEvents
	o.watch(context.Background(), "c", nil)
	o.beforeInitExit("c")
	o.release("c")
	o.close()
	(&oomEvents{}).beforeInitExit("c")
}
