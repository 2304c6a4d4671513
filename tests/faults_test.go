//go:build integration && linux

package tests

// Faults (docs/reliability.md): the shim or containerd SIGKILLed, the OCI runtime failing or
// killed mid-call, a stdout reader dying, a Delete cancelled halfway. Each runs on both runtimes
// of containerd 2.4 and ends with the same checks: nothing left behind (process, runc state,
// mount, socket), and the differential where the reference supports the behaviour.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"

	"github.com/custom-shim/containerd-shim-custom-v1/tests/harness"
)

// faultScenarios run in order on one containerd 2.4, each on both runtimes, with a differential.
var faultScenarios = []scenario{
	{"shim-sigkill", scenarioShimSigkill},
	{"runtime-faults", scenarioRuntimeFaults},
	{"stdout-reader-dies", scenarioReaderDies},
	{"tty-reader-dies", scenarioTTYReaderDies},
	{"pty-dies", scenarioPtyDies},
	{"logger-dies", scenarioLoggerDies},
	{"delete-cancelled", scenarioDeleteCancelled},
	{"delete-unanswered", scenarioDeleteUnanswered},
}

func TestFaults(t *testing.T) {
	paths := harness.DefaultPaths(t)
	harness.Require(t, harness.Executable(paths.Shim), "%s is not built (run `make build`)", paths.Shim)
	spec := harness.Daemons(paths)[0]
	// The daemon level in the names (TestFaults/containerd-2.4/<scenario>/...) lets referenceBugs
	// keys "<daemon>/<scenario>" apply, as in the scenario tables.
	t.Run(spec.Name, func(t *testing.T) {
		d := harness.Start(t, spec, paths)
		for _, sc := range faultScenarios {
			t.Run(sc.name, func(t *testing.T) {
				obs := map[string]*observation{}
				for _, rt := range runtimes {
					t.Run(rt, func(t *testing.T) { obs[rt] = sc.run(newRow(t, d, rt)) })
				}
				t.Run("differential", func(t *testing.T) { compare(t, obs) })
			})
		}
	})
}

// runcState is the runc state dir of container id (both runtimes use runc's default root).
func runcState(d *harness.Daemon, id string) string {
	return filepath.Join("/run/containerd/runc", d.Namespace, id)
}

// gone waits for pid to disappear (or become a zombie of someone else) and reports whether it did.
func gone(pid int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return true
		}
		s := string(raw)
		if i := strings.LastIndexByte(s, ')'); i > 0 && len(s) > i+2 && s[i+2] == 'Z' {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// SIGKILL of the shim while its container runs: containerd runs the delete action, which must
// report 137 (TaskExit with the init's pid) and leave no runc state, mount, socket or process.
func scenarioShimSigkill(r *row) *observation {
	a := newAPIRow(r)
	rec := subscribe(r.t, r.Daemon, a.c)
	ctr, task := a.running("shimkill")
	id, pid := ctr.ID(), int(task.Pid())
	bundle := r.Bundle(id)
	if _, err := os.Stat(runcState(r.Daemon, id)); err != nil {
		r.t.Fatalf("runc state of a running container: %v", err)
	}
	shim := shimOf(r.t, r.Daemon, id)
	addr, err := r.ShimAddress(id)
	if err != nil {
		r.t.Fatal(err)
	}
	// A shim sends its events on their own, maybe after the RPC that made them has returned: one
	// not yet sent when the shim is killed is lost, with either shim (seen with the reference's
	// /tasks/start). Kill it once containerd has the /tasks/start, so both rows see the same.
	if _, ok := r.Events.Wait(r.from, eventTimeout, harness.TaskEvent(r.Namespace, id, "/tasks/start")); !ok {
		r.t.Fatalf("no /tasks/start for %s within %s; task events: %v", id, eventTimeout, r.events())
	}
	if err := syscall.Kill(shim, syscall.SIGKILL); err != nil {
		r.t.Fatal(err)
	}
	n := rec.waitCount(1, eventTimeout, func(e taskEvent) bool { return e.Topic == "/tasks/exit" && e.Container == id })
	var exit taskEvent
	for _, e := range rec.events(func(c string) bool { return c == id }) {
		if e.Topic == "/tasks/exit" {
			exit = e
		}
	}
	a.note("exits %d, status %d, pid set %v", n, exit.Status, exit.Pid != 0)
	if n != 1 || exit.Status != 137 || exit.Pid != uint32(pid) {
		r.t.Errorf("after the shim was killed: %d exits, last %+v; want one, status 137, pid %d", n, exit, pid)
	}
	a.note("init gone: %v", gone(pid, eventTimeout))
	if !gone(pid, 0) {
		r.t.Errorf("init %d of %s outlived its shim's cleanup", pid, id)
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	deadline := time.Now().Add(eventTimeout)
	for {
		_, err := os.Stat(runcState(r.Daemon, id))
		if errors.Is(err, os.ErrNotExist) || time.Now().After(deadline) {
			a.note("runc state removed: %v", errors.Is(err, os.ErrNotExist))
			if !errors.Is(err, os.ErrNotExist) {
				r.t.Errorf("runc state %s left after the delete action: %v", runcState(r.Daemon, id), err)
			}
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if m := harness.MountsUnder(bundle); len(m) > 0 {
		r.t.Errorf("mounts left under %s: %v", bundle, m)
	}
	// The delete action must remove the dead server's socket (nothing listens on it any more).
	r.expectGone(strings.TrimPrefix(addr, "unix://"), "shim-sigkill/socket")
	_, err = task.Status(a.ctx)
	a.note("task after cleanup: %s", class(err))
	if _, err := task.Delete(a.ctx); err != nil && !errdefs.IsNotFound(err) {
		r.t.Errorf("delete task after the shim died: %v", err)
	}
	a.deleteContainer(ctr)
	return a.observation()
}

// The OCI runtime fails at create, start or exec, or is SIGKILLed in the middle of create (a
// wrapper selected through BinaryName): each call fails with the runtime's own message, nothing
// is left behind, and the shim keeps serving the other container of its group.
func scenarioRuntimeFaults(r *row) *observation {
	a := newAPIRow(r)
	group := "faults-" + r.short
	keepID := r.id("faultkeep")
	keeper, keep, err := newTask(a.ctx, r.t, r.Daemon, a.c, keepID, r.runtime, nil, []oci.SpecOpts{grouped(group)}, "sleep", "1000")
	if err != nil {
		r.t.Fatal(err)
	}
	if err := keep.Start(a.ctx); err != nil {
		r.t.Fatal(err)
	}
	shim := shimOf(r.t, r.Daemon, keepID)
	serves := func(when string) {
		r.t.Helper()
		st, err := keep.Status(a.ctx)
		if err != nil || st.Status != containerd.Running {
			r.t.Fatalf("%s: keeper status %v, %v", when, st, err)
		}
		p, ch := a.startExec(keeper, keep, "probe", "/bin/true")
		if st := <-ch; st.ExitCode() != 0 {
			r.t.Errorf("%s: probe exec exit %d", when, st.ExitCode())
		}
		if _, err := p.Delete(a.ctx); err != nil {
			r.t.Errorf("%s: delete probe: %v", when, err)
		}
	}
	serves("before")
	base, err := statProc(shim)
	if err != nil {
		r.t.Fatal(err)
	}
	baseLinks := fdLinks(shim)
	faults := []struct{ name, body, want string }{
		{"create", `[ "$cmd" = create ] && fail "INJECTED-FAULT at create"`, "INJECTED-FAULT at create"},
		{"start", `[ "$cmd" = start ] && fail "INJECTED-FAULT at start"`, "INJECTED-FAULT at start"},
		{"exec", `[ "$cmd" = exec ] && fail "INJECTED-FAULT at exec"`, "INJECTED-FAULT at exec"},
		{"killed", `[ "$cmd" = create ] && { sleep 0.2; kill -9 $$; }`, ""},
	}
	for _, f := range faults {
		wrapper := runtimeWrapper(r.t, r.Paths.Runc(), "fault-"+f.name, f.body)
		id := r.id("fault-" + f.name)
		ctr, task, err := newTask(a.ctx, r.t, r.Daemon, a.c, id, r.runtime, runcBinary(wrapper), []oci.SpecOpts{grouped(group)}, "sleep", "1000")
		var pid int
		if err == nil {
			pid = int(task.Pid())
			err = task.Start(a.ctx)
		}
		if err == nil && f.name == "exec" {
			var p containerd.Process
			p, err = task.Exec(a.ctx, "e1", a.processSpec(ctr, "/bin/true"), cio.NullIO)
			if err == nil {
				err = p.Start(a.ctx)
				if _, derr := p.Delete(a.ctx); derr != nil {
					r.t.Errorf("delete failed exec: %v", derr)
				}
			}
		}
		r.t.Logf("fault at %s: %v", f.name, err)
		a.note("fault at %s: failed %v, runtime message %v", f.name, err != nil, f.want != "" && err != nil && strings.Contains(err.Error(), f.want))
		switch {
		case err == nil:
			r.t.Errorf("fault at %s: no error", f.name)
		case f.want != "" && !strings.Contains(err.Error(), f.want):
			r.t.Errorf("fault at %s: error %q lacks the runtime's message %q", f.name, err, f.want)
		case r.runtime == harness.RuntimeCustom && !strings.Contains(err.Error(), id) && f.name != "exec":
			r.t.Errorf("fault at %s: error %q does not name the container", f.name, err)
		}
		forceRemove(a.ctx, ctr, task)
		if ctr == nil {
			_ = a.c.ContainerService().Delete(a.ctx, id)
		}
		if pid != 0 && !gone(pid, eventTimeout) {
			r.t.Errorf("fault at %s: process %d of %s left", f.name, pid, id)
		}
		if _, err := os.Stat(runcState(r.Daemon, id)); !errors.Is(err, os.ErrNotExist) {
			r.t.Errorf("fault at %s: runc state of %s left (%v)", f.name, id, err)
			_ = exec.Command(r.Paths.Runc(), "--root", filepath.Dir(runcState(r.Daemon, id)), "delete", "-f", id).Run()
		}
		serves("after the fault at " + f.name)
	}
	if z := waitNoZombies(shim, 5*time.Second); len(z) > 0 {
		r.t.Errorf("zombies under the shim: %v", z)
	}
	deadline := time.Now().Add(5 * time.Second)
	after, _ := statProc(shim)
	for after.FDs > base.FDs && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		after, _ = statProc(shim)
	}
	r.t.Logf("shim before the faults: %s; after: %s", base, after)
	switch {
	case after.FDs <= base.FDs:
	case r.runtime == harness.RuntimeRunc:
		// Not a note: ours is held to no leak, the reference is not (see referenceBugs).
		r.t.Logf("known reference bug, not failing the reference row: shim fds %d after the faults, %d before (%v): %s",
			after.FDs, base.FDs, newFDs(baseLinks, fdLinks(shim)), referenceBugs[r.Spec.Name+"/pidfd-leak"])
	default:
		r.t.Errorf("shim fds %d after the faults, %d before: leaked %v", after.FDs, base.FDs, newFDs(baseLinks, fdLinks(shim)))
	}
	addr, err := r.ShimAddress(keepID)
	if err != nil {
		r.t.Fatal(err)
	}
	a.remove(keeper, keep)
	// The group's server exits with its last container and must take its socket with it.
	r.expectGone(strings.TrimPrefix(addr, "unix://"), "grouping/socket")
	return a.observation()
}

// A client reading a container's stdout dies mid-stream (ctr run, attached, SIGKILLed): the
// container and the shim keep running. Nobody drains the output meanwhile, so the writer blocks
// once the buffers are full (ours: the client's fifo, which the shim sizes to 256 KiB; the reference copies container
// pipe -> fifo, so it blocks after two buffers): that is the trade-off of docs/reliability.md, and
// what is asserted is what matters: the process is alive (not killed by SIGPIPE), the task is
// RUNNING, the shim serves an exec, and once a new reader attaches (`ctr tasks attach`, on the
// same fifos) output flows again and the writer resumes.
func scenarioReaderDies(r *row) *observation {
	a := newAPIRow(r)
	id := r.id("reader")
	ctx, cancel := context.WithTimeout(context.Background(), 2*harness.CtrTimeout)
	defer cancel()
	ctrCmd := func(args ...string) (*exec.Cmd, *bufio.Scanner) {
		full := append([]string{"--address", r.Address, "--namespace", r.Namespace}, args...)
		cmd := exec.CommandContext(ctx, r.Spec.Ctr, full...)
		cmd.Env = r.Env()
		cmd.WaitDelay = 5 * time.Second
		out, err := cmd.StdoutPipe()
		if err != nil {
			r.t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			r.t.Fatal(err)
		}
		return cmd, bufio.NewScanner(out)
	}
	stop := func(cmd *exec.Cmd) {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
	// 2000 lines of seq (8.9 KB) per iteration, 10 ms apart (over 100 KB/s here): nobody draining,
	// both runtimes block within a few seconds (logged, not asserted). The iteration count goes to /tmp/n.
	run, sc := ctrCmd(r.runArgs(append([]string{"--fifo-dir", r.FifoDir, harness.ImageBusybox.Ref, id}, flood...)...)...)
	lines := 0
	for lines < 1000 && sc.Scan() {
		lines++
	}
	stop(run)
	if lines < 1000 {
		r.t.Fatalf("ctr run printed %d lines before it was killed, want 1000", lines)
	}
	task := r.WaitTask(r.t, id, "RUNNING", eventTimeout)
	// The counter is read from the host (/proc/PID/root), so that reading it makes no event.
	counter := func() int { return floodCounter(r.t, uint32(task.Pid)) }
	time.Sleep(time.Second) // long enough to fill the buffers nobody drains
	n1 := counter()
	time.Sleep(1500 * time.Millisecond)
	n2 := counter()
	r.t.Logf("writer with no reader: counter %d then %d 1.5 s later (blocked: %v)", n1, n2, n2 <= n1+10)

	alive := !gone(task.Pid, 0)
	st := r.WaitTask(r.t, id, "RUNNING", eventTimeout)
	a.note("init alive and RUNNING after its reader died: %v", alive && st.Pid == task.Pid)
	if !alive || st.Pid != task.Pid {
		r.t.Errorf("%s: init %d alive %v, task %+v after its stdout reader died", id, task.Pid, alive, st)
	}
	if ev, ok := r.Events.Wait(r.from, 0, harness.TaskEvent(r.Namespace, id, "/tasks/exit")); ok {
		r.t.Errorf("%s exited after its stdout reader died: %s", id, ev.JSON)
	}
	probe := r.ctr(nil, "tasks", "exec", "--exec-id", "probe", "--fifo-dir", r.FifoDir, id, "/bin/echo", "served")
	r.expect(probe, 0, "served\n")
	r.waitExit(id, "probe", 0)
	a.note("exec while the writer has no reader: %q", probe.Stdout)

	// A new reader on the same fifos: the buffered output, then new output, must flow.
	attach, asc := ctrCmd("tasks", "attach", id)
	var attached atomic.Int64
	go func() {
		for asc.Scan() {
			attached.Add(1)
		}
	}()
	deadline := time.Now().Add(eventTimeout)
	n3 := counter()
	for n3 <= n2+50 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		n3 = counter()
	}
	r.t.Logf("after a new reader attached: counter %d (was %d), %d lines read", n3, n2, attached.Load())
	resumed := n3 > n2+50 && attached.Load() > 0
	a.note("output flows again once a new reader attaches: %v", resumed)
	if !resumed {
		r.t.Errorf("%s: output did not resume after a new reader attached: counter %d then %d, %d lines read",
			id, n2, n3, attached.Load())
	}
	stop(attach) // before the kill: `ctr tasks attach` deletes the task when it exits
	r.killAndDeleteQuiet(id)
	return a.observation()
}

// A Delete whose context is cancelled part-way, then retried: the retry succeeds or answers
// NotFound, and nothing is orphaned (process, runc state, shim, mount, socket).
//
// The events are logged, not compared: where the cancel lands decides whether the shim finished
// the first Delete (the retry is then NotFound, and containerd publishes its own TaskExit and
// TaskDelete from the delete action when the shim goes: a second exit, containerd#4769) or not
// (the retry deletes), for either runtime.
func scenarioDeleteCancelled(r *row) *observation {
	a := newAPIRow(r)
	rec := subscribe(r.t, r.Daemon, a.c)
	for _, after := range []time.Duration{time.Millisecond, 3 * time.Millisecond, 10 * time.Millisecond, 30 * time.Millisecond, 100 * time.Millisecond} {
		ctr, task := a.running(fmt.Sprintf("cancel%d", after.Milliseconds()))
		pid := int(task.Pid())
		addr, err := r.ShimAddress(ctr.ID())
		if err != nil {
			r.t.Fatal(err)
		}
		shim := shimOf(r.t, r.Daemon, ctr.ID())
		a.killInit(task)
		cctx, cancel := context.WithTimeout(a.ctx, after)
		_, err1 := task.Delete(cctx)
		cancel()
		_, err2 := task.Delete(a.ctx)
		r.t.Logf("delete cancelled after %s: %v; retry: %v", after, err1, err2)
		if err2 != nil && !errdefs.IsNotFound(err2) {
			r.t.Errorf("retried delete after a cancel at %s: %v, want success or NotFound", after, err2)
		}
		if err := ctr.Delete(a.ctx, containerd.WithSnapshotCleanup); err != nil {
			r.t.Errorf("delete container: %v", err)
		}
		if !gone(pid, eventTimeout) {
			r.t.Errorf("process %d orphaned", pid)
		}
		if _, err := os.Stat(runcState(r.Daemon, ctr.ID())); !errors.Is(err, os.ErrNotExist) {
			r.t.Errorf("runc state of %s orphaned (%v)", ctr.ID(), err)
		}
		if !gone(shim, 5*time.Second) {
			// Ours is held to it by the row's leak check (shim process and socket).
			if r.runtime != harness.RuntimeRunc {
				r.t.Errorf("shim %d of %s still running after its task and container were deleted", shim, ctr.ID())
			} else {
				r.t.Logf("known reference bug, not failing the reference row: shim %d of %s orphaned (retry: %v): %s",
					shim, ctr.ID(), err2, referenceBugs[r.Spec.Name+"/delete-cancelled/orphan-shim"])
				_ = syscall.Kill(shim, syscall.SIGKILL)
				gone(shim, 5*time.Second)
				_ = os.Remove(strings.TrimPrefix(addr, "unix://"))
			}
		}
		id := ctr.ID()
		exits := rec.waitCount(1, eventTimeout, func(e taskEvent) bool { return e.Topic == "/tasks/exit" && e.Container == id && e.Status == 137 })
		var topics []string
		for _, e := range rec.events(func(c string) bool { return c == id }) {
			topics = append(topics, fmt.Sprintf("%s %d", e.Topic, e.Status))
		}
		r.t.Logf("events of %s: %v", id, topics)
		switch {
		case exits > 0:
		case r.runtime == harness.RuntimeRunc:
			// The reference shim exits after Delete before its publisher has
			// sent the /tasks/exit queued before it. Ours must not drop it.
			r.t.Logf("reference dropped the /tasks/exit of %s", id)
		default:
			r.t.Errorf("no /tasks/exit 137 for %s, killed before its cancelled Delete: %v", id, topics)
		}
		a.note("cancel at %s: retry succeeded or NotFound: %v", after, err2 == nil || errdefs.IsNotFound(err2))
	}
	return &observation{Notes: a.notes}
}

// TestContainerdCrash SIGKILLs containerd while containers of both runtimes run, kills one
// container's init while it is down, and restarts it (its events reachable only slowRestart
// later), on containerd 2.4 and 1.6: running tasks are still RUNNING and take execs, the output
// written meanwhile reached the client without a gap, and the exit that happened meanwhile is
// reported (TaskExit 137) and shows in State and Wait (STOPPED, 137).
func TestContainerdCrash(t *testing.T) {
	paths := harness.DefaultPaths(t)
	harness.Require(t, harness.Executable(paths.Shim), "%s is not built (run `make build`)", paths.Shim)
	for _, spec := range harness.Daemons(paths) {
		t.Run(spec.Name, func(t *testing.T) { containerdCrash(t, harness.Start(t, spec, paths)) })
	}
}

// slowRestart is how long after its restart containerd's events are out of the shims' reach in
// TestContainerdCrash.
const slowRestart = 7 * time.Second

func containerdCrash(t *testing.T, d *harness.Daemon) {
	ctx, cancel := context.WithTimeout(d.Context(context.Background()), 3*time.Minute)
	defer cancel()
	c := d.Client(t)
	type pair struct {
		out, victim         containerd.Container
		outTask, victimTask containerd.Task
		buf                 *syncBuffer
		victimShim          int
	}
	pairs := map[string]*pair{}
	for _, rt := range runtimes {
		p := &pair{buf: &syncBuffer{}}
		short := shortName(rt)
		var err error
		p.out, err = d.NewContainer(ctx, c, "out-"+short, rt, nil, "sh", "-c", `i=0; while :; do i=$((i+1)); echo $i; usleep 20000; done`)
		if err != nil {
			t.Fatal(err)
		}
		p.outTask, err = p.out.NewTask(ctx, cio.NewCreator(cio.WithStreams(nil, p.buf, p.buf), cio.WithFIFODir(d.FifoDir)))
		if err != nil {
			t.Fatal(err)
		}
		p.victim, p.victimTask, err = newTask(ctx, t, d, c, "victim-"+short, rt, nil, nil, "sleep", "1000")
		if err != nil {
			t.Fatal(err)
		}
		for _, task := range []containerd.Task{p.outTask, p.victimTask} {
			if err := task.Start(ctx); err != nil {
				t.Fatal(err)
			}
		}
		p.victimShim = shimOf(t, d, p.victim.ID())
		pairs[rt] = p
	}
	time.Sleep(300 * time.Millisecond)
	d.Crash(t)
	lines := map[string]int{}
	for rt, p := range pairs {
		lines[rt] = len(strings.Fields(p.buf.String()))
		if err := syscall.Kill(int(p.victimTask.Pid()), syscall.SIGKILL); err != nil {
			t.Fatalf("kill victim of %s: %v", rt, err)
		}
	}
	time.Sleep(time.Second)
	// containerd comes back on a new ttrpc path: the shims reach it only once the test has
	// subscribed to its events and connected the old path, so no event they held can be
	// delivered before anyone listens.
	connect := d.RestartOnNewTTRPC(t)
	c2 := d.Client(t)
	rec := subscribe(t, d, c2)
	// containerd takes a while to come back on a busy node (or a slow machine): here its events
	// reach it only slowRestart after it reloaded the shims, past pkg/shim's 5 s bound on a
	// shim's shutdown callbacks. A shim that containerd shut down while reloading must still
	// deliver the exit it held.
	time.Sleep(slowRestart)
	connect()
	for _, rt := range runtimes {
		t.Run(rt, func(t *testing.T) {
			p := pairs[rt]
			out, err := c2.LoadContainer(ctx, p.out.ID())
			if err != nil {
				t.Fatal(err)
			}
			outTask, err := out.Task(ctx, nil)
			if err != nil {
				t.Fatalf("task of %s after restart: %v", out.ID(), err)
			}
			if st, err := outTask.Status(ctx); err != nil || st.Status != containerd.Running {
				t.Errorf("%s after restart: %+v, %v; want running", out.ID(), st, err)
			}
			var exOut syncBuffer
			spec, _ := out.Spec(ctx)
			ps := *spec.Process
			ps.Args = []string{"echo", "exec after restart"}
			ep, err := outTask.Exec(ctx, "after", &ps, cio.NewCreator(cio.WithStreams(nil, &exOut, &exOut), cio.WithFIFODir(d.FifoDir)))
			if err != nil {
				t.Fatalf("exec after restart: %v", err)
			}
			ech, _ := ep.Wait(ctx)
			if err := ep.Start(ctx); err != nil {
				t.Fatalf("start exec after restart: %v", err)
			}
			if st := <-ech; st.ExitCode() != 0 {
				t.Errorf("exec after restart: exit %d", st.ExitCode())
			}
			ep.Delete(ctx)
			if !strings.Contains(exOut.String(), "exec after restart") {
				t.Errorf("exec output %q", exOut.String())
			}
			// Output: consecutive numbers, and more of them since the crash.
			deadline := time.Now().Add(eventTimeout)
			for len(strings.Fields(p.buf.String())) < lines[rt]+60 && time.Now().Before(deadline) {
				time.Sleep(50 * time.Millisecond)
			}
			nums := strings.Fields(p.buf.String())
			for i, s := range nums {
				if s != strconv.Itoa(i+1) {
					t.Errorf("output line %d is %q: lost or garbled around the crash", i+1, s)
					break
				}
			}
			t.Logf("%s: %d lines at the crash, %d now", out.ID(), lines[rt], len(nums))
			if len(nums) < lines[rt]+60 {
				t.Errorf("output did not continue across the crash: %d lines at the crash, %d now", lines[rt], len(nums))
			}

			victim, err := c2.LoadContainer(ctx, p.victim.ID())
			if err != nil {
				t.Fatal(err)
			}
			vt, err := victim.Task(ctx, nil)
			// The exit that happened while containerd was down is reported once it is back:
			// the shim holds the event and delivers it when containerd listens again.
			isExit := func(e taskEvent) bool {
				return e.Topic == "/tasks/exit" && e.Container == victim.ID() && e.Exec == ""
			}
			rec.waitCount(1, 10*time.Second, isExit)
			var exits []uint32
			for _, e := range rec.events(nil) {
				if isExit(e) {
					exits = append(exits, e.Status)
				}
			}
			t.Logf("%s: /tasks/exit of the exit during the outage, received after the restart: %v", victim.ID(), exits)
			switch {
			case len(exits) == 1 && exits[0] == 137:
			case len(exits) == 0 && rt == harness.RuntimeRunc:
				t.Logf("known reference bug, not failing: %s", referenceBugs["containerd-crash/exit-lost"])
			default:
				t.Errorf("%s: exits reported after the restart %v, want one with status 137", victim.ID(), exits)
			}
			if errdefs.IsNotFound(err) {
				// containerd 2.x deletes, while it reloads, the task of a shim that has no
				// process left (core/runtime/v2/shim_load.go: "cleaning leaked shim process",
				// containerd#6860): Delete, then Shutdown, before its own ttrpc server is up.
				// Ours outlives that Shutdown until the held TaskExit and TaskDelete are
				// delivered (task/events.go), checked above. Here: the task is gone for
				// good, with its process, its shim and its bundle.
				t.Logf("%s removed by containerd on reload", victim.ID())
				if !gone(int(p.victimTask.Pid()), 0) {
					t.Errorf("%s: init %d still alive", victim.ID(), p.victimTask.Pid())
				}
				if !gone(p.victimShim, eventTimeout) {
					t.Errorf("%s: shim %d still running after containerd removed its task", victim.ID(), p.victimShim)
				}
				if _, err := os.Stat(d.Bundle(victim.ID())); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("%s: bundle left after containerd removed its task (%v)", victim.ID(), err)
				}
				if err := victim.Delete(ctx, containerd.WithSnapshotCleanup); err != nil {
					t.Errorf("delete container %s: %v", victim.ID(), err)
				}
				forceRemove(ctx, out, outTask)
				return
			}
			if err != nil {
				t.Fatalf("task of %s after restart: %v", victim.ID(), err)
			}
			st, err := vt.Status(ctx)
			if err != nil || st.Status != containerd.Stopped || st.ExitStatus != 137 {
				t.Errorf("%s, killed while containerd was down: %+v, %v; want stopped 137", victim.ID(), st, err)
			}
			wch, err := vt.Wait(ctx)
			if err != nil {
				t.Fatal(err)
			}
			select {
			case ws := <-wch:
				if ws.ExitCode() != 137 {
					t.Errorf("wait %s: %d, want 137", victim.ID(), ws.ExitCode())
				}
			case <-time.After(eventTimeout):
				t.Errorf("wait %s: no answer", victim.ID())
			}
			if _, err := vt.Delete(ctx); err != nil {
				t.Errorf("delete %s: %v", victim.ID(), err)
			}
			victim.Delete(ctx, containerd.WithSnapshotCleanup)
			forceRemove(ctx, out, outTask)
		})
	}
	if leaks := d.WaitClean(harness.SnapshotSockets(), 10*time.Second); len(leaks.Processes)+len(leaks.Mounts) > 0 {
		t.Errorf("left behind after the restart test:%s", leaks)
	}
}

// counterWriter counts the lines written to it.
type counterWriter struct{ lines atomic.Int64 }

func (c *counterWriter) Write(p []byte) (int, error) {
	c.lines.Add(int64(bytes.Count(p, []byte("\n"))))
	return len(p), nil
}

// flood is a container or exec command that writes ~2,000 lines every 10 ms, its iteration
// count in /tmp/n (read from the host, so that reading it makes no event).
var flood = []string{"sh", "-c", `i=0; while :; do i=$((i+1)); echo $i > /tmp/n; seq 2000; usleep 10000; done`}

// floodCounter reads the iteration count of a flood in the container whose init is pid.
func floodCounter(t *testing.T, pid uint32) int {
	t.Helper()
	for try := 0; ; try++ {
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/root/tmp/n", pid))
		if err != nil {
			t.Fatalf("read the counter of %d: %v", pid, err)
		}
		if n, err := strconv.Atoi(strings.TrimSpace(string(raw))); err == nil {
			return n
		}
		if try == 50 {
			t.Fatalf("counter of %d: %q", pid, raw)
		}
		time.Sleep(10 * time.Millisecond) // caught between the shell's truncate and write
	}
}

// The reader of a container's terminal (the client holding the stdout fifo) goes away
// mid-stream: the container and the shim keep running and serve an exec, and a new reader
// (an attach on the same fifos) gets output again. As with a plain stdout, the writer may block
// while nobody reads (back-pressure, see scenarioReaderDies); it must resume once read.
func scenarioTTYReaderDies(r *row) *observation {
	a := newAPIRow(r)
	id := a.id("tty-reader")
	ctr, err := a.NewContainer(a.ctx, a.c, id, a.runtime, []oci.SpecOpts{oci.WithTTY}, flood...)
	if err != nil {
		a.t.Fatalf("new container %s: %v", id, err)
	}
	// The client's fifos, opened here so that its reader can die the way a process does: its
	// descriptors closed, the fifos left in place for the next reader.
	fifos, err := cio.NewFIFOSetInDir(a.FifoDir, id, true)
	if err != nil {
		a.t.Fatal(err)
	}
	dio, err := cio.NewDirectIO(a.ctx, fifos)
	if err != nil {
		a.t.Fatal(err)
	}
	defer dio.Close() // removes the fifos, once the task is gone
	first := &counterWriter{}
	go func() { _, _ = io.Copy(first, dio.Stdout) }()
	task, err := ctr.NewTask(a.ctx, func(string) (cio.IO, error) { return dio, nil })
	if err != nil {
		a.t.Fatalf("new task %s: %v", id, err)
	}
	if err := task.Start(a.ctx); err != nil {
		a.t.Fatalf("start %s: %v", id, err)
	}
	a.waitFor("1,000 lines through the terminal", func() bool { return first.lines.Load() >= 1000 })
	dio.Stdout.Close() // the reader dies
	time.Sleep(time.Second)
	alive := !gone(int(task.Pid()), 0)
	st, err := task.Status(a.ctx)
	a.note("init alive and RUNNING after its terminal's reader went away: %v", alive && err == nil && st.Status == containerd.Running)
	if !alive || err != nil || st.Status != containerd.Running {
		a.t.Errorf("%s: init alive %v, status %+v (%v) after its terminal's reader went away", id, alive, st, err)
	}
	if _, seen := a.Events.Wait(a.from, 0, harness.TaskEvent(a.Namespace, id, "/tasks/exit")); seen {
		a.t.Errorf("%s exited after its terminal's reader went away", id)
	}
	_, ech := a.startExec(ctr, task, "probe", "true")
	a.note("exec meanwhile: exit %d", (<-ech).ExitCode())

	second := &counterWriter{}
	if _, err := ctr.Task(a.ctx, cio.NewAttach(cio.WithStreams(nil, second, nil), cio.WithTerminal)); err != nil {
		a.t.Fatalf("attach to %s: %v", id, err)
	}
	n1 := floodCounter(a.t, task.Pid())
	deadline := time.Now().Add(eventTimeout)
	for (second.lines.Load() < 1000 || floodCounter(a.t, task.Pid()) <= n1+20) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	resumed := second.lines.Load() >= 1000 && floodCounter(a.t, task.Pid()) > n1+20
	a.t.Logf("after a new reader attached: %d lines read, counter %d → %d", second.lines.Load(), n1, floodCounter(a.t, task.Pid()))
	a.note("output flows to a new reader: %v", resumed)
	if !resumed {
		a.t.Errorf("%s: output did not resume for a new reader (%d lines)", id, second.lines.Load())
	}
	a.remove(ctr, task)
	return a.observation()
}

// An exec's terminal dies mid-stream (its process, the pty's only user, is SIGKILLed while it
// floods the pty): the exec's exit is reported (137), its reader sees the end of the output,
// the shim keeps no pty of it, and it goes on serving the container: a new terminal exec works.
func scenarioPtyDies(r *row) *observation {
	a := newAPIRow(r)
	ctr, task := a.running("pty-dies")
	shim := shimOf(a.t, a.Daemon, ctr.ID())
	ptys := ptmxFds(a.t, shim)
	spec := a.processSpec(ctr, flood...)
	spec.Terminal = true
	out := &counterWriter{}
	p, ch := a.startExecSpec(task, "flood", spec, cio.NewCreator(cio.WithStreams(nil, out, nil), cio.WithTerminal, cio.WithFIFODir(a.FifoDir)))
	a.waitFor("1,000 lines through the exec's terminal", func() bool { return out.lines.Load() >= 1000 })
	if err := syscall.Kill(int(p.Pid()), syscall.SIGKILL); err != nil {
		a.t.Fatalf("kill the exec: %v", err)
	}
	st := <-ch
	a.waitExit(ctr.ID(), "flood", 137)
	closed := make(chan struct{})
	go func() { p.IO().Wait(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(eventTimeout):
		a.t.Errorf("the exec's output never ended after its terminal died")
	}
	if _, err := p.Delete(a.ctx); err != nil {
		a.t.Errorf("delete exec: %v", err)
	}
	a.note("exec killed mid-stream: exit %d, output ended", st.ExitCode())
	deadline := time.Now().Add(5 * time.Second)
	for ptmxFds(a.t, shim) != ptys && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	switch n := ptmxFds(a.t, shim); {
	case n == ptys:
	case a.runtime == harness.RuntimeRunc:
		a.t.Logf("known reference bug, not failing: %s (%d ptys, %d before)", referenceBugs["containerd-2.4/pty-dies/pty-leak"], n, ptys)
	default:
		a.t.Errorf("shim holds %d ptys 5 s after the exec was deleted, %d before", n, ptys)
	}
	echo := a.processSpec(ctr, "echo", "served")
	echo.Terminal = true
	var buf syncBuffer
	p2, ch2 := a.startExecSpec(task, "after", echo, cio.NewCreator(cio.WithStreams(nil, &buf, nil), cio.WithTerminal, cio.WithFIFODir(a.FifoDir)))
	st2 := <-ch2
	p2.IO().Wait()
	p2.Delete(a.ctx)
	a.note("terminal exec afterwards: exit %d, %q", st2.ExitCode(), strings.TrimSpace(buf.String()))
	if st2.ExitCode() != 0 || strings.TrimSpace(buf.String()) != "served" {
		a.t.Errorf("terminal exec after the dead one: exit %d, output %q", st2.ExitCode(), buf.String())
	}
	a.remove(ctr, task)
	return a.observation()
}

// deadLogger is a binary:// logger that signals ready, takes 4 KiB of stdout and exits.
const deadLogger = `#!/bin/sh
printf x >&5
exec 5>&-
/usr/bin/head -c 4096 <&3 > "$2/got"
exit 1
`

// writeLogger writes script as an executable logging binary in a fresh dir, and returns its path
// and the dir.
func writeLogger(t *testing.T, script string) (bin, dir string) {
	t.Helper()
	dir = t.TempDir()
	bin = filepath.Join(dir, "logger")
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return bin, dir
}

// The logging binary dies mid-stream: the container keeps running and its writes keep succeeding
// (the shim drains and discards what nobody can log any more; the reference lets them fail:
// referenceBugs), and the shim serves an exec.
func scenarioLoggerDies(r *row) *observation {
	a := newAPIRow(r)
	id := a.id("logger-dies")
	bin, dir := writeLogger(a.t, deadLogger)
	// The shell writes itself (builtin echo, ~1.5 KB per line): a write into a pipe nobody can
	// read would kill the init with SIGPIPE, not just a child of it.
	writer := `l=$(seq 400 | tr '\n' ' '); i=0; while :; do i=$((i+1)); echo $i > /tmp/n; echo "$i $l" || echo $i >> /tmp/failed; usleep 10000; done`
	r.expect(r.ctr(nil, r.runArgs("-d", "--log-uri", "binary://"+bin+"?dir="+dir, harness.ImageBusybox.Ref, id, "sh", "-c", writer)...), 0, "-")
	task := r.WaitTask(r.t, id, "RUNNING", eventTimeout)
	a.waitFor("the logger to take its 4 KiB and exit", func() bool {
		b, err := os.ReadFile(filepath.Join(dir, "got"))
		return err == nil && len(b) == 4096
	})
	time.Sleep(500 * time.Millisecond)
	var n1, n2 int
	running := !gone(task.Pid, 0)
	if running {
		n1 = floodCounter(a.t, uint32(task.Pid))
		time.Sleep(time.Second)
		running = !gone(task.Pid, 0)
		if running {
			n2 = floodCounter(a.t, uint32(task.Pid))
		}
	}
	writing := running && n2 > n1+20
	// Containers here inherit an ignored SIGPIPE (from containerd), so a write into a pipe
	// without a reader fails with EPIPE rather than killing the writer: count those failures.
	failed, _ := os.ReadFile(fmt.Sprintf("/proc/%d/root/tmp/failed", task.Pid))
	a.note("writes failed after the logger died: %v", len(failed) > 0)
	if len(failed) > 0 && a.runtime == harness.RuntimeCustom {
		a.t.Errorf("%s: %d writes failed after its logger died (nobody holds the pipe)", id, len(strings.Fields(string(failed))))
	}
	a.t.Logf("after the logger died: alive %v, counter %d → %d in 1 s", running, n1, n2)
	a.note("container alive and writing after its logger died: %v", writing)
	if !writing {
		a.t.Errorf("%s: after its logger died the container is alive %v, counter %d → %d in 1 s", id, running, n1, n2)
	}
	if writing {
		probe := r.ctr(nil, "tasks", "exec", "--exec-id", "probe", id, "/bin/true")
		r.expect(probe, 0, "")
		a.note("exec served")
		r.killAndDeleteQuiet(id)
	} else {
		r.ctr(nil, "tasks", "delete", "-f", id)
		r.ctr(nil, "containers", "delete", id)
	}
	return a.observation()
}

// slowStopLogger is a binary:// logger that drains the container's output and, asked to stop
// (SIGTERM at the container's Delete), takes a second to go: the shim's Delete then ends well
// after its OCI runtime's delete has.
const slowStopLogger = `#!/bin/sh
exec 5>&-
trap 'sleep 1; exit 0' TERM
cat <&3 >/dev/null &
cat <&4 >/dev/null &
while :; do sleep 0.05; done
`

// A Delete done in the shim but answered after its caller's deadline (the logger's stop makes
// it outlast 300 ms, after runc's delete is over): the retry must not leave the shim orphaned.
// containerd keeps its record of the task for a retry, and its client checks the task's status
// before it retries: a NotFound there ends the retry before containerd's delete runs, so nothing
// ever asks the shim to shut down. Ours keeps the container, deleted (STOPPED), until the retry,
// whose Delete then answers what the first would have: the exit status 137.
func scenarioDeleteUnanswered(r *row) *observation {
	a := newAPIRow(r)
	id := a.id("unanswered")
	bin, _ := writeLogger(a.t, slowStopLogger)
	r.expect(r.ctr(nil, r.runArgs("-d", "--log-uri", "binary://"+bin, harness.ImageBusybox.Ref, id, "sleep", "1000")...), 0, "-")
	r.WaitTask(r.t, id, "RUNNING", eventTimeout)
	ctr, err := a.c.LoadContainer(a.ctx, id)
	if err != nil {
		a.t.Fatal(err)
	}
	task, err := ctr.Task(a.ctx, nil)
	if err != nil {
		a.t.Fatal(err)
	}
	pid := int(task.Pid())
	addr, err := r.ShimAddress(id)
	if err != nil {
		a.t.Fatal(err)
	}
	shim := shimOf(a.t, r.Daemon, id)
	a.killInit(task)
	cctx, cancel := context.WithTimeout(a.ctx, 300*time.Millisecond)
	_, err1 := task.Delete(cctx)
	cancel()
	a.note("first delete answered in time: %v", err1 == nil)
	if err1 == nil {
		a.t.Errorf("the first Delete of %s answered within 300 ms: its logger's slow stop did not hold it up", id)
	}
	status, err2 := task.Delete(a.ctx)
	r.t.Logf("delete with a 300 ms deadline: %v; retry: %v (status %v)", err1, err2, status)
	a.note("retry succeeded or NotFound: %v", err2 == nil || errdefs.IsNotFound(err2))
	if r.runtime != harness.RuntimeRunc && (err2 != nil || status == nil || status.ExitCode() != 137) {
		a.t.Errorf("retried Delete of %s: %v, status %v; want the exit status 137 the first would have answered", id, err2, status)
	}
	if err := ctr.Delete(a.ctx, containerd.WithSnapshotCleanup); err != nil {
		a.t.Errorf("delete container: %v", err)
	}
	if !gone(pid, eventTimeout) {
		a.t.Errorf("process %d orphaned", pid)
	}
	if _, err := os.Stat(runcState(r.Daemon, id)); !errors.Is(err, os.ErrNotExist) {
		a.t.Errorf("runc state of %s orphaned (%v)", id, err)
	}
	if !gone(shim, 5*time.Second) {
		if r.runtime != harness.RuntimeRunc {
			a.t.Errorf("shim %d of %s still running after its task and container were deleted", shim, id)
		} else {
			r.t.Logf("known reference bug, not failing the reference row: shim %d of %s orphaned (retry: %v): %s",
				shim, id, err2, referenceBugs[r.Spec.Name+"/delete-cancelled/orphan-shim"])
			_ = syscall.Kill(shim, syscall.SIGKILL)
			gone(shim, 5*time.Second)
			_ = os.Remove(strings.TrimPrefix(addr, "unix://"))
		}
	}
	// Events are logged, not compared: on the reference's NotFound, containerd publishes the exit
	// a second time itself (containerd#4769). Ours answers the retry, so its exit comes once.
	time.Sleep(500 * time.Millisecond)
	events := a.events()
	r.t.Logf("events: %v", events)
	exits := 0
	for _, e := range events {
		if strings.HasSuffix(e, "/tasks/exit init 137") {
			exits++
		}
	}
	if r.runtime != harness.RuntimeRunc && exits != 1 {
		a.t.Errorf("%d /tasks/exit 137 of %s, want exactly 1: %v", exits, id, events)
	}
	return &observation{Notes: a.notes}
}
