//go:build integration && linux

package tests

import (
	"context"
	"fmt"
	"io"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/custom-shim/containerd-shim-custom-v1/tests/harness"
)

// eventTimeout bounds the wait for an event the shim should already have published.
const eventTimeout = 10 * time.Second

// runtimes are the columns of every scenario: the reference first, so its observation is the
// one ours is compared with.
var runtimes = []string{harness.RuntimeRunc, harness.RuntimeCustom}

// observation is what a scenario saw, compared between the two runtimes of one daemon.
type observation struct {
	Stdout   string
	ExitCode int      // of the ctr command that waited for the process
	Events   []string // task events, normalised by role (see row.events)
	Notes    []string // scenario-specific findings (error classes, states), in order
	// droppedEvents: the reference lost an event (see row.waitExit); Events are then not compared.
	droppedEvents bool
}

// scenario is a named row function: run once per daemon and runtime.
type scenario struct {
	name string
	run  func(*row) *observation
}

// runTable runs every scenario of table against each daemon (one daemon per release, shared by
// the table), first on the reference runtime then on ours, and compares what they observed.
func runTable(t *testing.T, table []scenario) {
	paths := harness.DefaultPaths(t)
	for _, spec := range harness.Daemons(paths) {
		t.Run(spec.Name, func(t *testing.T) {
			d := harness.Start(t, spec, paths)
			for _, sc := range table {
				t.Run(sc.name, func(t *testing.T) {
					obs := map[string]*observation{}
					for _, rt := range runtimes {
						t.Run(rt, func(t *testing.T) {
							if rt == harness.RuntimeCustom {
								harness.Require(t, harness.Executable(paths.Shim), "%s is not built (run `make build`)", paths.Shim)
							}
							o := sc.run(newRow(t, d, rt))
							t.Logf("observed: %+v", *o)
							obs[rt] = o
						})
					}
					t.Run("differential", func(t *testing.T) { compare(t, obs) })
				})
			}
		})
	}
}

// row is one scenario run against one daemon with one runtime.
type row struct {
	*harness.Daemon
	t       *testing.T
	runtime string
	short   string // "runc" or "custom": suffix of container ids, so rows never share one
	from    int    // events position when the row began
	// droppedEvents: the reference lost an event in this row (logged); its events are not compared.
	droppedEvents bool
	mu            sync.Mutex        // guards roles: a row may name containers from several goroutines
	roles         map[string]string // container id → role
}

// newRow starts a row. Its leak check is registered first so that it runs last, after the
// forced removal of the row's containers that id registers.
func newRow(t *testing.T, d *harness.Daemon, runtime string) *row {
	t.Helper()
	snap := harness.SnapshotSockets()
	r := &row{Daemon: d, t: t, runtime: runtime, from: d.Events.Len(), roles: map[string]string{}}
	r.short = shortName(runtime)
	t.Cleanup(func() { r.assertClean(snap) })
	return r
}

// shortName is the <name> of runtime io.containerd.<name>.vN: "runc" or "custom".
func shortName(runtime string) string { return strings.Split(runtime, ".")[2] }

// id names the container playing role in this row, and makes sure it is removed when the row
// ends, whatever happened.
func (r *row) id(role string) string {
	id := role + "-" + r.short
	r.mu.Lock()
	r.roles[id] = role
	r.mu.Unlock()
	r.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), harness.CtrTimeout)
		defer cancel()
		if slices.Contains(strings.Fields(r.Ctr(ctx, nil, "containers", "ls", "-q").Stdout), id) {
			r.ForceRemove(ctx, id)
		}
	})
	return id
}

// assertClean fails the row if a shim process, a mount or a shim socket outlived its containers.
func (r *row) assertClean(snap harness.SocketSnapshot) {
	leaks := r.WaitClean(snap, 10*time.Second)
	if leaks.Empty() {
		return
	}
	r.t.Errorf("left behind after the row's containers were deleted:%s", leaks)
	if err := harness.Reap(leaks); err != nil {
		r.t.Errorf("reap: %v", err)
	}
}

// ctr runs ctr with stdin and CtrTimeout and fails the row if it could not run or timed out;
// the exit code is the caller's to check.
func (r *row) ctr(stdin io.Reader, args ...string) harness.Result {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), harness.CtrTimeout)
	defer cancel()
	res := r.Ctr(ctx, stdin, args...)
	if res.Err != nil {
		r.t.Fatalf("%s", res)
	}
	return res
}

// runArgs is the start of a `ctr run` command line for this row's runtime.
func (r *row) runArgs(flags ...string) []string {
	return append([]string{"run", "--runtime", r.runtime}, flags...)
}

// waitExit waits for the /tasks/exit of process execID (the container id for init) of container
// id and checks its status.
func (r *row) waitExit(id, execID string, want uint32) {
	r.t.Helper()
	r.waitExitSince(r.from, id, execID, want)
}

// waitExitSince is waitExit for an exit published after events position from (a container id
// that exits twice: checkpointed, then restored).
func (r *row) waitExitSince(from int, id, execID string, want uint32) {
	r.t.Helper()
	ev, ok := r.Events.Wait(from, eventTimeout, func(e harness.Event) bool {
		return harness.TaskEvent(r.Namespace, id, "/tasks/exit")(e) && e.ID == execID
	})
	if !ok && r.runtime == harness.RuntimeRunc {
		// Seen now and then with `ctr run`: the reference shim exits after Delete before its
		// publisher has sent the /tasks/exit queued before it. Ours must
		// not drop it; the reference row records the drop and compare() skips its events.
		r.t.Logf("reference dropped the /tasks/exit of %s/%s; task events: %v", id, execID, r.events())
		r.droppedEvents = true
		return
	}
	if !ok {
		r.t.Fatalf("no /tasks/exit for %s/%s within %s; task events: %v", id, execID, eventTimeout, r.events())
	}
	if ev.ExitStatus != want {
		r.t.Fatalf("/tasks/exit for %s/%s: exit_status %d, want %d (%s)", id, execID, ev.ExitStatus, want, ev.JSON)
	}
}

// events returns the row's task events as "<role> <topic>[ <process> <status>]", checking the
// order the Task API promises for each container: create, start, then exits, then delete.
//
// /tasks/delete is checked when present but left out of the result: containerd 2.x relays the
// one the shim publishes, and the reference shim sometimes exits before it is sent (seen about
// once in five `ctr run --rm` with a non-zero exit), so its presence is not part of the contract.
func (r *row) events() []string {
	var out []string
	seen := map[string][]string{}
	for _, e := range r.Events.Since(r.from, func(e harness.Event) bool { return strings.HasPrefix(e.Topic, "/tasks/") }) {
		r.mu.Lock()
		role, ok := r.roles[e.ContainerID]
		r.mu.Unlock()
		if !ok || e.Namespace != r.Namespace {
			continue
		}
		seen[role] = append(seen[role], e.Topic)
		if e.Topic == "/tasks/delete" {
			continue
		}
		s := role + " " + e.Topic
		if e.Topic == "/tasks/exit" {
			process := "init"
			if e.ID != e.ContainerID {
				process = e.ID
			}
			s += fmt.Sprintf(" %s %d", process, e.ExitStatus)
		}
		out = append(out, s)
	}
	sortExecExitRuns(out)
	for role, topics := range seen {
		if !ordered(topics, "/tasks/create", "/tasks/start", "/tasks/exit", "/tasks/delete") {
			if r.runtime == harness.RuntimeRunc {
				// Seen with `ctr run --rm` now and then: the reference shim's /tasks/delete
				// overtakes its /tasks/exit. Ours is held to the order.
				r.t.Logf("reference: task events of %s out of order: %v", role, topics)
				continue
			}
			r.t.Errorf("task events of %s out of order: %v", role, topics)
		}
	}
	return out
}

// sortExecExitRuns sorts each run of consecutive exec exits: execs that die together (with
// their init, or killed by the shim) are reaped in no particular order.
func sortExecExitRuns(out []string) {
	isExecExit := func(s string) bool {
		f := strings.Fields(s)
		return len(f) == 4 && f[1] == "/tasks/exit" && f[2] != "init"
	}
	for i := 0; i < len(out); {
		j := i
		for j < len(out) && isExecExit(out[j]) {
			j++
		}
		if j > i {
			slices.Sort(out[i:j])
			i = j
		} else {
			i++
		}
	}
}

// ordered reports whether the first occurrences of want appear in topics in want's order
// (absent ones are skipped).
func ordered(topics []string, want ...string) bool {
	last := -1
	for _, w := range want {
		for i, topic := range topics {
			if topic == w {
				if i < last {
					return false
				}
				last = i
				break
			}
		}
	}
	return true
}

// observe is what a `ctr run --rm` of container id saw. It first waits for the container's
// /tasks/exit (with the exit code ctr returned): ctr returns as soon as it has the exit status, and
// the event may reach the daemon's event stream after that, so events read at once would miss it.
func (r *row) observe(res harness.Result, id string) *observation {
	r.t.Helper()
	r.waitExit(id, id, uint32(res.ExitCode))
	return &observation{Stdout: res.Stdout, ExitCode: res.ExitCode, Events: r.events(), droppedEvents: r.droppedEvents}
}

// expect fails the row unless ctr exited with code and printed stdout (when stdout != "-").
func (r *row) expect(res harness.Result, code int, stdout string) {
	r.t.Helper()
	if res.ExitCode != code || (stdout != "-" && res.Stdout != stdout) {
		r.t.Fatalf("want exit %d and stdout %q, got %s", code, stdout, res)
	}
}

// waitSignalCaught waits until process pid has a handler for sig (SigCgt in /proc/PID/status),
// so a signal sent next is not dropped: PID 1 of a PID namespace ignores signals it has no
// handler for, except SIGKILL and SIGSTOP (pid_namespaces(7)).
func (r *row) waitSignalCaught(pid, sig int) {
	r.t.Helper()
	deadline := time.Now().Add(eventTimeout)
	for {
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			r.t.Fatalf("read status of pid %d: %v", pid, err)
		}
		for _, line := range strings.Split(string(raw), "\n") {
			if hex, ok := strings.CutPrefix(line, "SigCgt:"); ok {
				mask, _ := strconv.ParseUint(strings.TrimSpace(hex), 16, 64)
				if mask&(1<<(sig-1)) != 0 {
					return
				}
			}
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("pid %d installed no handler for signal %d within %s", pid, sig, eventTimeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// expectShim checks that exactly one shim of this daemon runs and that it is this row's runtime
// binary (so that no row passes on the wrong shim), and returns it.
func (r *row) expectShim() harness.Proc {
	r.t.Helper()
	shims := r.ShimProcesses()
	if len(shims) != 1 {
		r.t.Fatalf("want one shim process, have %v", shims)
	}
	want := r.Paths.Shim
	if r.runtime == harness.RuntimeRunc {
		want = r.Spec.RefShim
	}
	exe, err1 := os.Stat(fmt.Sprintf("/proc/%d/exe", shims[0].Pid))
	wantSt, err2 := os.Stat(want)
	if err1 != nil || err2 != nil || !os.SameFile(exe, wantSt) {
		r.t.Fatalf("shim %s is not %s (%v, %v)", shims[0], want, err1, err2)
	}
	return shims[0]
}

// compare is the differential check: our runtime must have observed what the reference did.
func compare(t *testing.T, obs map[string]*observation) {
	t.Helper()
	ref, ours := obs[harness.RuntimeRunc], obs[harness.RuntimeCustom]
	if ref == nil || ours == nil {
		// Not a skip: a differential that could not run is a failed check.
		t.Fatalf("nothing to compare: a row failed (reference observed: %v, ours observed: %v)", ref != nil, ours != nil)
	}
	if ref.droppedEvents {
		t.Logf("the reference dropped an event in this row: comparing all but the events\nreference: %+v\nours:      %+v", *ref, *ours)
		r, o := *ref, *ours
		r.Events, o.Events, r.droppedEvents = nil, nil, false
		ref, ours = &r, &o
	}
	if !reflect.DeepEqual(ref, ours) {
		for key, why := range referenceBugs {
			if strings.Contains(t.Name(), "/"+key+"/") {
				t.Logf("known reference deviation, not failing: %s\nreference: %+v\nours:      %+v", why, *ref, *ours)
				return
			}
		}
		t.Errorf("%s differs from the reference\nreference: %+v\nours:      %+v", harness.RuntimeCustom, *ref, *ours)
	}
}
