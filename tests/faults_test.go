//go:build integration && linux

package tests

// Faults (issue 5, "Faults"): the shim or containerd SIGKILLed, the OCI runtime failing or
// killed mid-call, a stdout reader dying, a Delete cancelled halfway. Each runs on both runtimes
// of containerd 2.4 and ends with the same checks: nothing left behind (process, runc state,
// mount, socket), and the differential where the reference supports the behaviour.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
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
	{"delete-cancelled", scenarioDeleteCancelled},
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
	if err := ctr.Delete(a.ctx, containerd.WithSnapshotCleanup); err != nil {
		r.t.Fatalf("delete container: %v", err)
	}
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
// once the buffers are full (ours: the client's fifo, 64 KiB; the reference copies container
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
	// both runtimes block within a second. The iteration count goes to /tmp/n.
	run, sc := ctrCmd(r.runArgs("--fifo-dir", r.FifoDir, harness.ImageBusybox.Ref, id,
		"sh", "-c", `i=0; while :; do i=$((i+1)); echo $i > /tmp/n; seq 2000; usleep 10000; done`)...)
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
	counter := func() int {
		for try := 0; ; try++ {
			raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/root/tmp/n", task.Pid))
			if err != nil {
				r.t.Fatalf("read the counter of %s: %v", id, err)
			}
			n, err := strconv.Atoi(strings.TrimSpace(string(raw)))
			if err == nil {
				return n
			}
			if try == 50 {
				r.t.Fatalf("counter of %s: %q", id, raw)
			}
			time.Sleep(10 * time.Millisecond) // caught between the shell's truncate and write
		}
	}
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
			// BEHAVIOURS.md B.15: the reference shim exits after Delete before its publisher has
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
// container's init while it is down, and restarts it: running tasks are still RUNNING and take
// execs, the output written meanwhile reached the client without a gap, and the exit that
// happened meanwhile shows in State and Wait (STOPPED, 137).
func TestContainerdCrash(t *testing.T) {
	paths := harness.DefaultPaths(t)
	harness.Require(t, harness.Executable(paths.Shim), "%s is not built (run `make build`)", paths.Shim)
	d := harness.Start(t, harness.Daemons(paths)[0], paths)
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
	d.Restart(t)
	c2 := d.Client(t)
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
			if errdefs.IsNotFound(err) {
				// containerd 2.4 deletes, while it reloads, the task of a shim that has no
				// process left (core/runtime/v2/shim_load.go: "cleaning leaked shim process",
				// containerd#6860): Delete, then Shutdown, before its own ttrpc server is up.
				// The shim's TaskExit (published while containerd was down) and TaskDelete
				// are then retried by pkg/shim's publisher until the shim exits at that
				// Shutdown, so they are lost, for both runtimes (docs/reliability.md). What
				// can be checked: the task is gone for good, with its process, its shim and
				// its bundle; an exit event, if one arrives, says 137.
				ev, seen := d.Events.Wait(0, 2*time.Second, harness.TaskEvent(d.Namespace, victim.ID(), "/tasks/exit"))
				t.Logf("%s removed by containerd on reload (containerd 2.4); /tasks/exit seen after the restart: %v %s",
					victim.ID(), seen, ev.JSON)
				if seen && ev.ExitStatus != 137 {
					t.Errorf("%s: exit during the outage reported with status %d, want 137", victim.ID(), ev.ExitStatus)
				}
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
			_, seen := d.Events.Wait(0, 2*time.Second, harness.TaskEvent(d.Namespace, victim.ID(), "/tasks/exit"))
			t.Logf("%s: /tasks/exit of the exit during the outage seen after the restart: %v", victim.ID(), seen)
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
