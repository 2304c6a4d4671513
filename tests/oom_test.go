//go:build integration && linux

package tests

// OOM kills: a container that allocates past its
// memory limit gets /tasks/oom, published before its init's /tasks/exit (137), also when it
// allocates from its first instant; and Stats still answers after the exit, before Delete,
// with the kill counted (CRI reads it to tell OOMKilled, containerd aa3c50792). Each row runs
// on both runtimes of both daemons and is compared with the reference.

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	cgroupsv1 "github.com/containerd/cgroups/v3/cgroup1/stats"
	cgroupsv2 "github.com/containerd/cgroups/v3/cgroup2/stats"
	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/typeurl/v2"

	"github.com/custom-shim/containerd-shim-custom-v1/tests/harness"
)

// oomLimit is the containers' memory limit; tail of an endless line (/dev/zero has no newline)
// buffers until it is killed. The test hosts have no swap
// (with swap, runc's v1 memsw limit stays unlimited and the container would swap instead).
const oomLimit = 32 << 20

// oomChildScript makes a child of the init the OOM victim; the shell reports it as 137. One
// allocating process only: with a second one still charging memory while the victim dies (as
// in `head -c 200m /dev/zero | tail`, whose head keeps filling the pipe) the kernel sends a
// storm of OOM notifications, and the reference shim publishes one TaskOOM per notification,
// thousands at times, which delays its TaskExit by seconds.
const oomChildScript = "tail /dev/zero; exit $?"

var oomScenarios = []scenario{
	{"oom-child", scenarioOOMChild},
	{"oom-init-first-instant", scenarioOOMInit},
	{"oom-stats-after-exit", scenarioOOMStats},
	{"oom-watch-released", scenarioOOMWatchReleased},
}

func TestOOM(t *testing.T) { runTable(t, oomScenarios) }

// A child of the init is OOM-killed; the shell reports it as 137. /tasks/oom comes before the
// init's /tasks/exit.
func scenarioOOMChild(r *row) *observation {
	return r.runOOM(r.id("oom-child"), "sh", "-c", oomChildScript)
}

// B.18: the init itself allocates from its first instant after start (it is tail, no shell in
// front) and is the OOM victim. The watch began at create, so /tasks/oom is still published,
// before the exit.
func scenarioOOMInit(r *row) *observation {
	return r.runOOM(r.id("oom-init"), "tail", "/dev/zero")
}

// runOOM runs args detached in container id under the memory limit, waits for its 137 exit,
// checks /tasks/oom came first, and deletes it. Detached, so that the delete comes only after
// the exit event was seen: with `ctr run --rm` the reference shim's /tasks/exit, delayed
// behind its OOM events, is sometimes overtaken by /tasks/delete.
func (r *row) runOOM(id string, args ...string) *observation {
	r.t.Helper()
	r.expect(r.ctr(nil, r.runArgs(append([]string{"-d", "--null-io", "--memory-limit", strconv.Itoa(oomLimit),
		harness.ImageBusybox.Ref, id}, args...)...)...), 0, "-")
	r.waitExit(id, id, 137)
	r.expectOOMBeforeExit(id)
	rm := r.ctr(nil, "tasks", "rm", id)
	r.expect(rm, 0, "")
	if !strings.Contains(rm.Stderr, "exit code 137") {
		r.t.Errorf("ctr tasks rm %s: want the 137 exit in stderr: %s", id, rm)
	}
	r.expect(r.ctr(nil, "containers", "rm", id), 0, "")
	return oomObservation(&observation{ExitCode: 137, Events: r.events()})
}

// B.19: after an OOM exit and before Delete, Stats answers containerd's cgroup metrics type
// with the kill counted (v1 memory_oom_control.oom_kill, v2 memory_events.oom_kill).
func scenarioOOMStats(r *row) *observation {
	id := r.id("oom-stats")
	ctx, cancel := context.WithTimeout(r.Context(context.Background()), 2*harness.CtrTimeout)
	defer cancel()
	c := r.Client(r.t)
	ctr, err := r.NewContainer(ctx, c, id, r.runtime, []oci.SpecOpts{oci.WithMemoryLimit(oomLimit)},
		"sh", "-c", oomChildScript)
	if err != nil {
		r.t.Fatalf("new container %s: %v", id, err)
	}
	task, err := ctr.NewTask(ctx, cio.NullIO)
	if err != nil {
		r.t.Fatalf("new task %s: %v", id, err)
	}
	exited, err := task.Wait(ctx)
	if err != nil {
		r.t.Fatalf("wait %s: %v", id, err)
	}
	if err := task.Start(ctx); err != nil {
		r.t.Fatalf("start %s: %v", id, err)
	}
	var code uint32
	select {
	case st := <-exited:
		code = st.ExitCode()
	case <-ctx.Done():
		r.t.Fatalf("%s did not exit: %v", id, ctx.Err())
	}
	if code != 137 {
		r.t.Fatalf("%s exited with %d, want 137 (OOM kill)", id, code)
	}
	r.waitExit(id, id, 137)
	r.expectOOMBeforeExit(id)

	var notes []string
	m, err := task.Metrics(ctx)
	if err != nil {
		r.t.Fatalf("metrics after the OOM exit: %v", err)
	}
	v, err := typeurl.UnmarshalAny(m.Data)
	if err != nil {
		r.t.Fatalf("decode metrics (%s): %v", m.Data.GetTypeUrl(), err)
	}
	notes = append(notes, "metrics after OOM exit: "+m.Data.GetTypeUrl())
	var kills uint64
	switch v := v.(type) {
	case *cgroupsv1.Metrics:
		kills = v.GetMemoryOomControl().GetOomKill()
	case *cgroupsv2.Metrics:
		kills = v.GetMemoryEvents().GetOomKill()
	default:
		r.t.Fatalf("metrics type %T", v)
	}
	notes = append(notes, fmt.Sprintf("oom_kill counted: %v", kills > 0))
	if kills == 0 {
		r.t.Errorf("metrics after the OOM exit: oom_kill = 0: %+v", v)
	}

	if _, err := task.Delete(ctx); err != nil {
		r.t.Fatalf("delete task %s: %v", id, err)
	}
	if err := ctr.Delete(ctx, containerd.WithSnapshotCleanup); err != nil {
		r.t.Fatalf("delete container %s: %v", id, err)
	}
	return oomObservation(&observation{ExitCode: int(code), Events: r.events(), Notes: notes})
}

// expectOOMBeforeExit checks that container id got /tasks/oom, and before its init's
// /tasks/exit: CRI marks a container OOMKilled from a TaskOOM that precedes the exit.
func (r *row) expectOOMBeforeExit(id string) { r.expectOOMBeforeExitSince(r.from, id) }

// expectOOMBeforeExitSince is expectOOMBeforeExit for the events from position from on.
func (r *row) expectOOMBeforeExitSince(from int, id string) {
	r.t.Helper()
	if _, ok := r.Events.Wait(from, eventTimeout, harness.TaskEvent(r.Namespace, id, "/tasks/oom")); !ok {
		r.t.Fatalf("no /tasks/oom for %s; task events: %v", id, r.events())
	}
	oom, exit := -1, -1
	for _, e := range r.Events.Since(from, harness.TaskEvent(r.Namespace, id, "")) {
		switch {
		case e.Topic == "/tasks/oom" && oom < 0:
			oom = e.Seq
		case e.Topic == "/tasks/exit" && e.ID == id && exit < 0:
			exit = e.Seq
		}
	}
	if exit >= 0 && oom > exit {
		r.t.Errorf("/tasks/oom of %s after its init's /tasks/exit; task events: %v", id, r.events())
	}
}

// oomObservation collapses runs of /tasks/oom into one for the differential: the reference
// shim publishes one per cgroup v1 OOM notification (one to several per kill, varying from
// run to run), ours one per kill it counts. Order relative to the other events is kept.
func oomObservation(o *observation) *observation {
	var out []string
	for _, e := range o.Events {
		if strings.HasSuffix(e, " /tasks/oom") && len(out) > 0 && out[len(out)-1] == e {
			continue
		}
		out = append(out, e)
	}
	o.Events = out
	return o
}

// B.20 through the Task API: containers created and deleted one after another in one shim
// (grouped, as a pod's are) leave no OOM watch fd behind in it, and an OOM in the last one is
// still published. The shim's count of eventfd and inotify fds must come back to what it was
// with only the long-lived container.
func scenarioOOMWatchReleased(r *row) *observation {
	sandbox := "oom-sandbox-" + r.short
	group := []string{"--annotation", "io.kubernetes.cri.sandbox-id=" + sandbox}
	keep := r.id("oom-keep")
	r.expect(r.ctr(nil, r.runArgs(append(append([]string{"-d", "--null-io"}, group...),
		harness.ImageBusybox.Ref, keep, "sleep", "1000")...)...), 0, "-")
	r.WaitTask(r.t, keep, "RUNNING", eventTimeout)
	shim := r.expectShim()
	addr, err := r.ShimAddress(keep)
	if err != nil || addr == "" {
		r.t.Fatalf("shim address of %s: %q, %v", keep, addr, err)
	}
	base := watchFDs(r.t, shim.Pid)
	baseList := fdList(shim.Pid)

	const cycles = 5
	id := r.id("oom-cycle")
	var from int
	for i := 1; i <= cycles; i++ {
		from = r.Events.Len()
		args := []string{"true"}
		if i == cycles {
			args = []string{"tail", "/dev/zero"}
		}
		r.expect(r.ctr(nil, r.runArgs(append(append([]string{"-d", "--null-io", "--memory-limit", strconv.Itoa(oomLimit)}, group...),
			append([]string{harness.ImageBusybox.Ref, id}, args...)...)...)...), 0, "-")
		want := uint32(0)
		if i == cycles {
			want = 137
		}
		ev, ok := r.Events.Wait(from, eventTimeout, func(e harness.Event) bool {
			return harness.TaskEvent(r.Namespace, id, "/tasks/exit")(e) && e.ID == id
		})
		if !ok || ev.ExitStatus != want {
			r.t.Fatalf("cycle %d: /tasks/exit of %s: %v (found %v), want status %d", i, id, ev.JSON, ok, want)
		}
		r.expect(r.ctr(nil, "tasks", "rm", id), 0, "")
		r.expect(r.ctr(nil, "containers", "rm", id), 0, "")
	}
	r.expectOOMBeforeExitSince(from, id)
	// The reference shim releases its v1 watch when the kernel signals the cgroup's removal,
	// asynchronously: wait for the count to settle rather than sample it once.
	deadline := time.Now().Add(eventTimeout)
	now := watchFDs(r.t, shim.Pid)
	for now > base && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		now = watchFDs(r.t, shim.Pid)
	}
	if now > base {
		r.t.Errorf("shim eventfd/inotify fds: %d with the long-lived container only, %d after %d create/delete cycles\nbefore: %v\nafter:  %v",
			base, now, cycles, baseList, fdList(shim.Pid))
	}
	r.killAndDeleteQuiet(keep)
	// The grouped shim exits after its last container; the reference 2.4.2 leaves its socket
	// behind (referenceBugs), which expectGone tolerates for the reference only.
	for deadline := time.Now().Add(eventTimeout); syscall.Kill(shim.Pid, 0) == nil; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			r.t.Fatalf("shim %s still running after its last container was deleted", shim)
		}
	}
	r.expectGone(strings.TrimPrefix(addr, "unix://"), "grouping/socket")
	o := oomObservation(&observation{Events: r.events()})
	o.Notes = append(o.Notes, fmt.Sprintf("shim watch fds back to baseline: %v", now <= base))
	return o
}

// watchFDs counts pid's eventfd and inotify fds: what an OOM watch holds (cgroup v1 eventfd,
// v2 inotify), in both shims. Other fds are not this test's business.
func watchFDs(t *testing.T, pid int) int {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("fds of shim %d: %v", pid, err)
	}
	n := 0
	for _, e := range ents {
		target, _ := os.Readlink(dir + "/" + e.Name())
		if target == "anon_inode:[eventfd]" || target == "anon_inode:inotify" {
			n++
		}
	}
	return n
}

// fdList describes a process's fds, for failure messages.
func fdList(pid int) []string {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, _ := os.ReadDir(dir)
	var out []string
	for _, e := range ents {
		target, _ := os.Readlink(dir + "/" + e.Name())
		out = append(out, e.Name()+"="+target)
	}
	return out
}
