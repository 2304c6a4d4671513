//go:build integration && linux

package tests

// Load (docs/reliability.md): many container lifecycles and execs, many concurrent and many
// exiting at once, through one grouped shim; every process must yield exactly one exit event
// with its status, in order, and the shim must end with no zombie and its fds, threads and RSS
// back at their baseline. A short version runs in CI; `make soak` (CST_SOAK=1) runs the long one.

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/custom-shim/containerd-shim-custom-v1/tests/harness"
)

// loadSize is how much load a run makes.
type loadSize struct {
	Lifecycles  int // containers created, started, exited and deleted in the group
	Execs       int // execs in the keeper container
	Concurrency int
	Burst       int // tracked execs exiting at the same moment, beside 500 untracked orphans
	RSSSlackKiB int // allowed growth of RssAnon over the baseline after the lifecycles and execs
	// EndSlackKiB: allowed growth at the end, after the burst. 500 execs blocked at once are
	// 500 pending Wait RPCs, each a goroutine in the ttrpc server: the Go runtime keeps a g for
	// each (it never frees them) and the spans they and their stacks were cut from stay partly
	// used. That is a high-water mark, not a leak: RepeatSlackKiB bounds what a second,
	// identical burst may add. Measured (docs/reliability.md): the first burst of the soak
	// leaves ~0.7-1 MiB; four more repeats moved it by +184, +128, -132 and +204 KiB, and a
	// repeat in a full soak by +424. The leak check proper is RSSSlackKiB: 1 MiB over 11,000
	// processes is under 0.1 KiB each.
	EndSlackKiB    int
	RepeatSlackKiB int
	// ThreadSlack: OS threads allowed over the baseline. The Go runtime never ends an idle
	// thread by itself, so every burst of blocking system calls past the warm-up's used to leave
	// the shim with a few more, for good (run 6 of the soak: +5). Ours ends them once it is
	// quiet (tune/threads.go, tune/trim.go), so it must come back to its baseline exactly.
	// The reference keeps them: 4 is what its CI-size run needs.
	ThreadSlack int
}

// loadSizes is the size of the run for runtime rt. In CI the reference runs less of the load: it
// is the baseline of the differential (zero loss on both), not the subject.
func loadSizes(rt string) loadSize {
	s := baseLoadSize(rt)
	// CST_LOAD_LIFECYCLES and CST_LOAD_EXECS override the counts (to reproduce a failure quickly).
	if n, err := strconv.Atoi(os.Getenv("CST_LOAD_LIFECYCLES")); err == nil {
		s.Lifecycles = n
	}
	if n, err := strconv.Atoi(os.Getenv("CST_LOAD_EXECS")); err == nil {
		s.Execs = n
	}
	return s
}

func baseLoadSize(rt string) loadSize {
	if soak() { // ours only (TestLoad)
		return loadSize{Lifecycles: 1000, Execs: 10000, Concurrency: 16, Burst: 500, RSSSlackKiB: 1024, EndSlackKiB: 2048,
			RepeatSlackKiB: 768, ThreadSlack: 0}
	}
	// CI sizes keep the whole reliability set under ~5 minutes on 2 cores: a runc exec costs
	// ~0.15 s of CPU, so 400 execs and 50 lifecycles take about a minute here.
	if rt == harness.RuntimeRunc {
		return loadSize{Lifecycles: 20, Execs: 150, Concurrency: 8, Burst: 50, RSSSlackKiB: 4096, EndSlackKiB: 4096,
			RepeatSlackKiB: 1024, ThreadSlack: 4}
	}
	return loadSize{Lifecycles: 50, Execs: 400, Concurrency: 8, Burst: 50, RSSSlackKiB: 4096, EndSlackKiB: 4096,
		RepeatSlackKiB: 1024, ThreadSlack: 0}
}

// loadResult is what a load run saw, compared between the runtimes.
type loadResult struct {
	acc              accounting
	before, after    procStat
	afterLoad        procStat // after the lifecycles and execs, before the burst
	afterRepeat      procStat // after a second burst
	zombies          int
	lifecycles       time.Duration
	execs            time.Duration
	lifecycleErrors  int
	execErrors       int
	burstOrphans     int // untracked children of the shim alive before the bursts (both, summed)
	burstLeft        int // of those, alive (or zombies) after them
	burstExits       int // tracked exits reported for the bursts
	burstWant        int
	slowCreateState  time.Duration // worst State latency while another create was slow
	slowCreateKill   time.Duration
	slowCreateMedian time.Duration
}

func TestLoad(t *testing.T) {
	paths := harness.DefaultPaths(t)
	harness.Require(t, harness.Executable(paths.Shim), "%s is not built (run `make build`)", paths.Shim)
	d := harness.Start(t, harness.Daemons(paths)[0], paths)
	results := map[string]*loadResult{}
	rts := runtimes
	if soak() {
		// The soak measures this shim. The reference, run at a quarter of the load with 16
		// workers, fails creates with "ttrpc: closed", loses exits and leaves cgroups behind
		// (docs/reliability.md, "Soak"), which would fail the run for reasons not ours.
		rts = []string{harness.RuntimeCustom}
		t.Logf("soak: %s only (the reference is the CI run's baseline, not the soak's)", harness.RuntimeCustom)
	}
	for _, rt := range rts {
		t.Run(rt, func(t *testing.T) {
			size := loadSizes(rt)
			t.Logf("load size: %+v (soak: %v)", size, soak())
			snap := harness.SnapshotSockets()
			results[rt] = runLoad(t, d, rt, size)
			leaks := d.WaitClean(snap, 10*time.Second)
			if rt == harness.RuntimeRunc && len(leaks.Processes)+len(leaks.Mounts) == 0 && len(leaks.Sockets) > 0 {
				t.Logf("known reference bug, not failing: %s; left:%s", referenceBugs["containerd-2.4/grouping/socket"], leaks)
				_ = harness.Reap(leaks)
			} else if !leaks.Empty() {
				t.Errorf("left behind:%s", leaks)
				_ = harness.Reap(leaks)
			}
		})
	}
	t.Run("differential", func(t *testing.T) {
		ref, ours := results[harness.RuntimeRunc], results[harness.RuntimeCustom]
		if ours == nil || (ref == nil && !soak()) {
			t.Fatal("a runtime's run failed: nothing to compare")
		}
		compared := map[string]*loadResult{"ours": ours}
		if ref != nil {
			compared["reference"] = ref
		}
		for name, r := range compared {
			t.Logf("%s: %s; shim %s -> %s after the load -> %s at the end; zombies %d; lifecycles %s, execs %s; burst %d/%d exits, %d/%d orphans left; "+
				"State/Kill during a slow create: median %s, max State %s, max Kill %s",
				name, r.acc, r.before, r.afterLoad, r.after, r.zombies, r.lifecycles, r.execs, r.burstExits, r.burstWant,
				r.burstLeft, r.burstOrphans, r.slowCreateMedian, r.slowCreateState, r.slowCreateKill)
		}
		for name, r := range compared {
			if !r.acc.clean() || r.acc.Exits+r.acc.DroppedExits != r.acc.Processes || r.burstExits != r.burstWant || r.burstLeft != 0 || r.zombies != 0 {
				t.Errorf("%s lost, duplicated or misordered something: %s", name, r.acc)
			}
		}
	})
}

// runLoad drives one runtime: a keeper container holds the group's shim; lifecycles and execs
// run through it concurrently; then the burst and the slow create.
func runLoad(t *testing.T, d *harness.Daemon, rt string, size loadSize) *loadResult {
	res := &loadResult{}
	c := d.Client(t)
	ctx, cancel := context.WithTimeout(d.Context(context.Background()), 30*time.Minute)
	defer cancel()
	rec := subscribe(t, d, c)
	short := shortName(rt)
	group := "load-" + short
	keepID := "keep-" + short
	keeper, keepTask, err := newTask(ctx, t, d, c, keepID, rt, nil,
		[]oci.SpecOpts{grouped(group), oci.WithHostNamespace(specs.PIDNamespace)}, "sleep", "100000")
	if err != nil {
		t.Fatalf("keeper: %v", err)
	}
	defer forceRemove(ctx, keeper, keepTask)
	if err := keepTask.Start(ctx); err != nil {
		t.Fatalf("start keeper: %v", err)
	}
	shim := shimOf(t, d, keepID)
	spec, err := keeper.Spec(ctx)
	if err != nil {
		t.Fatal(err)
	}
	procSpec := func(args ...string) *specs.Process {
		p := *spec.Process
		p.Args = args
		return &p
	}
	want := map[string]*expectation{}
	var wantMu sync.Mutex
	keepExp := &expectation{Init: 137, Execs: map[string]uint32{}, Deleted: true}
	want[keepID] = keepExp

	// lifecycle runs container n of the group to its exit and deletes it.
	lifecycle := func(n int) error {
		id := fmt.Sprintf("lc%d-%s", n, short)
		status := uint32(n % 4)
		args := []string{"/bin/true"}
		if status != 0 {
			args = []string{"sh", "-c", fmt.Sprintf("exit %d", status)}
		}
		wantMu.Lock()
		want[id] = &expectation{Init: status, Deleted: true}
		wantMu.Unlock()
		ctr, task, err := newTask(ctx, t, d, c, id, rt, nil, []oci.SpecOpts{grouped(group)}, args...)
		if err != nil {
			// Reported as a failed lifecycle; no task, so no events are expected of it.
			wantMu.Lock()
			delete(want, id)
			wantMu.Unlock()
			return fmt.Errorf("%s: %w", id, err)
		}
		ch, err := task.Wait(ctx)
		if err == nil {
			err = task.Start(ctx)
		}
		if err == nil {
			if st := <-ch; st.ExitCode() != status || st.Error() != nil {
				err = fmt.Errorf("exit %d (%v), want %d", st.ExitCode(), st.Error(), status)
			}
		}
		if err == nil {
			var st *containerd.ExitStatus
			st, err = task.Delete(ctx)
			if err == nil && st.ExitCode() != status {
				err = fmt.Errorf("delete reports %d, want %d", st.ExitCode(), status)
			}
		}
		if err != nil {
			forceRemove(ctx, ctr, task)
			return fmt.Errorf("%s: %w", id, err)
		}
		return ctr.Delete(ctx, containerd.WithSnapshotCleanup)
	}
	// execOne runs exec n in the keeper to its exit and deletes it.
	execOne := func(prefix string, n int) error {
		id := fmt.Sprintf("%s%d", prefix, n)
		status := uint32(n % 3)
		args := []string{"/bin/true"}
		if status != 0 {
			args = []string{"sh", "-c", fmt.Sprintf("exit %d", status)}
		}
		wantMu.Lock()
		keepExp.Execs[id] = status
		wantMu.Unlock()
		p, err := keepTask.Exec(ctx, id, procSpec(args...), cio.NullIO)
		if err != nil {
			return fmt.Errorf("exec %s: %w", id, err)
		}
		ch, err := p.Wait(ctx)
		if err == nil {
			err = p.Start(ctx)
		}
		if err == nil {
			if st := <-ch; st.ExitCode() != status || st.Error() != nil {
				err = fmt.Errorf("exec %s: exit %d (%v), want %d", id, st.ExitCode(), st.Error(), status)
			}
		}
		if _, derr := p.Delete(ctx); err == nil && derr != nil {
			err = fmt.Errorf("delete exec %s: %w", id, derr)
		}
		return err
	}
	parallel := func(n int, f func(int) error) (time.Duration, int) {
		start := time.Now()
		var next, failed atomic.Int64
		var wg sync.WaitGroup
		for range size.Concurrency {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := int(next.Add(1)) - 1
					if i >= n {
						return
					}
					if err := f(i); err != nil {
						if failed.Add(1) <= 5 {
							t.Errorf("%v", err)
						}
					}
				}
			}()
		}
		wg.Wait()
		return time.Since(start), int(failed.Load())
	}

	// Warm up the way the load runs (execs and lifecycles at the same time), so that the baseline
	// includes what the shim keeps after its first containers (connections, the OOM watcher's
	// registrations) and, for the reference, the OS threads the Go runtime keeps after that many
	// concurrent blocking calls.
	began := time.Now()
	var warm sync.WaitGroup
	warm.Add(2)
	go func() {
		defer warm.Done()
		parallel(size.Concurrency*2, func(i int) error { return execOne("warm", i) })
	}()
	go func() {
		defer warm.Done()
		parallel(size.Concurrency, func(i int) error { return lifecycle(100000 + i) })
	}()
	warm.Wait()
	// The baseline: fds settled (the warm-up's closes and containerd's connections are done).
	settle := time.Now().Add(10 * time.Second)
	for prev := -1; time.Now().Before(settle); time.Sleep(500 * time.Millisecond) {
		if res.before, err = statProc(shim); err != nil {
			t.Fatal(err)
		}
		if res.before.FDs == prev {
			break
		}
		prev = res.before.FDs
	}
	baseFDs := fdLinks(shim)
	t.Logf("shim %d baseline: %s (warm-up and settle took %s)", shim, res.before, time.Since(began).Round(time.Millisecond))

	// Lifecycles and execs at the same time.
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		res.lifecycles, res.lifecycleErrors = parallel(size.Lifecycles, lifecycle)
	}()
	go func() {
		defer wg.Done()
		res.execs, res.execErrors = parallel(size.Execs, func(i int) error { return execOne("x", i) })
	}()
	wg.Wait()
	t.Logf("%d lifecycles in %s (%d failed), %d execs in %s (%d failed)", size.Lifecycles, res.lifecycles,
		res.lifecycleErrors, size.Execs, res.execs, res.execErrors)
	// The bound is on the shim after its 10,000 execs: checked here. The end, after the
	// burst (500 execs blocked at once, a far higher peak than anything before it), has its own
	// bound, and a second burst must not grow it (EndSlackKiB).
	res.afterLoad = settleBack(t, shim, res.before, size.RSSSlackKiB, size)
	t.Logf("shim %d after the load: %s (baseline %s)", shim, res.afterLoad, res.before)
	if rt == harness.RuntimeCustom && res.afterLoad.AnonKiB > res.before.AnonKiB+size.RSSSlackKiB {
		t.Errorf("after the load: shim RssAnon %d KiB, baseline %d KiB: more than %d KiB growth", res.afterLoad.AnonKiB,
			res.before.AnonKiB, size.RSSSlackKiB)
	}
	if rt == harness.RuntimeCustom && res.afterLoad.Threads > res.before.Threads+size.ThreadSlack {
		t.Errorf("after the load: shim threads %d, baseline %d (+%d allowed): %s", res.afterLoad.Threads, res.before.Threads,
			size.ThreadSlack, threadReport(shim))
	}

	began = time.Now()
	burst(t, ctx, res, keepTask, keepExp, procSpec, shim, size.Burst, rec, "burst")
	t.Logf("burst took %s", time.Since(began).Round(time.Millisecond))
	slowCreate(t, ctx, d, c, res, rt, group, keepTask)

	if z := waitNoZombies(shim, 5*time.Second); len(z) > 0 {
		res.zombies = len(z)
		t.Errorf("zombies under shim %d: %v", shim, z)
	}
	res.after = settleBack(t, shim, res.before, size.EndSlackKiB, size)
	t.Logf("shim %d after: %s (baseline %s)", shim, res.after, res.before)
	switch {
	case res.after.FDs <= res.before.FDs:
	case rt == harness.RuntimeRunc:
		t.Logf("known reference bug, not failing: shim fds %d, baseline %d (%v): %s", res.after.FDs, res.before.FDs,
			newFDs(baseFDs, fdLinks(shim)), referenceBugs[d.Spec.Name+"/pidfd-leak"])
	default:
		t.Errorf("shim fds %d, baseline %d: leaked %v", res.after.FDs, res.before.FDs, newFDs(baseFDs, fdLinks(shim)))
	}
	if res.after.Threads > res.before.Threads+size.ThreadSlack {
		t.Errorf("shim threads %d, baseline %d (+%d allowed): %s", res.after.Threads, res.before.Threads, size.ThreadSlack,
			threadReport(shim))
	}
	// The bound is on private memory (RssAnon). VmRSS also counts the binary's text pages, which
	// code paths first run during the load (the burst, the slow create) page in for good: those
	// are shared, on a node, by every shim of the binary, and are no leak.
	if rt == harness.RuntimeCustom && res.after.AnonKiB > res.before.AnonKiB+size.EndSlackKiB {
		t.Errorf("shim RssAnon %d KiB, baseline %d KiB: more than %d KiB growth (%s)", res.after.AnonKiB, res.before.AnonKiB, size.EndSlackKiB, res.after)
	}
	// The same burst again: what the first left behind was its peak, if this one adds nothing.
	began = time.Now()
	burst(t, ctx, res, keepTask, keepExp, procSpec, shim, size.Burst, rec, "again")
	res.afterRepeat = settleBack(t, shim, res.after, size.RepeatSlackKiB, size)
	t.Logf("second burst took %s; shim %d after it: %s", time.Since(began).Round(time.Millisecond), shim, res.afterRepeat)
	if res.afterRepeat.FDs > res.before.FDs && rt == harness.RuntimeCustom {
		t.Errorf("shim fds %d after the second burst, baseline %d: leaked %v", res.afterRepeat.FDs, res.before.FDs,
			newFDs(baseFDs, fdLinks(shim)))
	}
	if rt == harness.RuntimeCustom && res.afterRepeat.Threads > res.before.Threads+size.ThreadSlack {
		t.Errorf("shim threads %d after the second burst, baseline %d (+%d allowed): %s", res.afterRepeat.Threads,
			res.before.Threads, size.ThreadSlack, threadReport(shim))
	}
	if rt == harness.RuntimeCustom && res.afterRepeat.AnonKiB > res.after.AnonKiB+size.RepeatSlackKiB {
		t.Errorf("a second burst grew the shim's RssAnon from %d to %d KiB (more than %d): not a high-water mark",
			res.after.AnonKiB, res.afterRepeat.AnonKiB, size.RepeatSlackKiB)
	}

	// End the keeper: its exit must come after all its execs'.
	ch, err := keepTask.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := keepTask.Kill(ctx, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-ch
	if _, err := keepTask.Delete(ctx); err != nil {
		t.Fatalf("delete keeper: %v", err)
	}
	if err := keeper.Delete(ctx, containerd.WithSnapshotCleanup); err != nil {
		t.Fatal(err)
	}
	wantMu.Lock()
	defer wantMu.Unlock()
	n := 0
	for _, e := range want {
		n += 1 + len(e.Execs)
	}
	if rt == harness.RuntimeRunc {
		// The reference shim exits after the Delete of its last container
		// before its publisher has sent that container's /tasks/exit (and /tasks/delete).
		keepExp.MayDrop = true
	}
	rec.waitCount(n, eventTimeout, func(e taskEvent) bool { return e.Topic == "/tasks/exit" && want[e.Container] != nil })
	rec.waitCount(len(want), 2*time.Second, func(e taskEvent) bool { return e.Topic == "/tasks/delete" && want[e.Container] != nil })
	res.acc = account(rec.events(nil), want)
	if res.acc.Dropped > 0 {
		t.Logf("known reference bug, not failing: the reference dropped %d events of its last container %s "+
			"(the shim exits before its publisher sends them)", res.acc.Dropped, keepID)
	}
	t.Logf("events: %s", res.acc)
	if !res.acc.clean() {
		t.Errorf("event accounting: %s", res.acc)
	}
	if len(rec.errs) > 0 {
		t.Errorf("event stream errors: %v", rec.errs)
	}
	return res
}

// settleBack waits (1 s, then up to 10 s more) for the shim's fds, threads and private memory to come back
// within the bounds of base (memory: slackKiB over it) (the last deletes' closes, the trim of freed heap pages), and
// returns where they are then.
func settleBack(t *testing.T, shim int, base procStat, slackKiB int, size loadSize) procStat {
	t.Helper()
	// First past the shim's trim (tune/trim.go: freed heap pages go back to the OS 200 ms after
	// the last Create, Start or Delete): read earlier, RssAnon still holds the free pages of the
	// last deletes, up to ~0.4 MiB after the burst.
	time.Sleep(time.Second)
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := statProc(shim)
		if err != nil {
			t.Fatal(err)
		}
		settled := st.FDs <= base.FDs && st.Threads <= base.Threads+size.ThreadSlack && st.AnonKiB <= base.AnonKiB+slackKiB
		if settled || time.Now().After(deadline) {
			if waited := 10*time.Second - time.Until(deadline); waited > 500*time.Millisecond {
				t.Logf("shim %d took %s more than 1 s to settle (settled %v): %s against %s (+%d KiB allowed)", shim,
					waited.Round(10*time.Millisecond), settled, st, base, slackKiB)
			}
			return st
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// burst makes many processes exit within a millisecond: 500 orphans of an exec (reparented to
// the shim, its subreaper, since the keeper shares the host PID namespace) and n tracked execs,
// all blocked opening one fifo for reading, released together by one writer. Every tracked
// exec must report its exit, and every orphan must be reaped (none left, no zombie).
func burst(t *testing.T, ctx context.Context, res *loadResult, task containerd.Task, exp *expectation,
	procSpec func(...string) *specs.Process, shim, n int, rec *recorder, prefix string) {
	t.Helper()
	gate := fmt.Sprintf("/tmp/gate-%d", time.Now().UnixNano())
	run := func(id string, args ...string) (containerd.Process, <-chan containerd.ExitStatus) {
		p, err := task.Exec(ctx, id, procSpec(args...), cio.NullIO)
		if err != nil {
			t.Fatalf("exec %s: %v", id, err)
		}
		ch, err := p.Wait(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Start(ctx); err != nil {
			t.Fatalf("start exec %s: %v", id, err)
		}
		return p, ch
	}
	cats := func() (alive int) {
		for _, c := range childrenOf(shim) {
			if c.Comm == "cat" {
				alive++
			}
		}
		return alive
	}
	exp.Execs[prefix+"-forker"] = 0
	p, ch := run(prefix+"-forker", "sh", "-c", fmt.Sprintf("mkdir -p /tmp; mkfifo %s && for i in $(seq 500); do cat %s & done", gate, gate))
	if st := <-ch; st.ExitCode() != 0 {
		t.Fatalf("forker exit %d", st.ExitCode())
	}
	_, _ = p.Delete(ctx)
	var procs []containerd.Process
	var chans []<-chan containerd.ExitStatus
	for i := range n {
		id := fmt.Sprintf("%s%d", prefix, i)
		exp.Execs[id] = 0
		p, ch := run(id, "cat", gate)
		procs, chans = append(procs, p), append(chans, ch)
	}
	deadline := time.Now().Add(eventTimeout)
	for cats() < 500+n && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	orphans := cats() - n
	res.burstOrphans += orphans
	if orphans != 500 {
		t.Errorf("%s: want 500 orphaned cats under the shim, have %d", prefix, orphans)
	}
	from := len(rec.events(nil))
	exp.Execs[prefix+"-release"] = 0
	rp, rch := run(prefix+"-release", "sh", "-c", ": > "+gate)
	<-rch
	_, _ = rp.Delete(ctx)
	for i, ch := range chans {
		select {
		case st := <-ch:
			if st.ExitCode() != 0 {
				t.Errorf("%s exec %d: exit %d", prefix, i, st.ExitCode())
			}
		case <-time.After(eventTimeout):
			t.Errorf("%s exec %d: no exit within %s", prefix, i, eventTimeout)
		}
	}
	got := func(e taskEvent) bool {
		rest, ok := strings.CutPrefix(e.Exec, prefix)
		_, err := strconv.Atoi(rest)
		return e.Topic == "/tasks/exit" && e.Container == task.ID() && ok && err == nil
	}
	rec.waitCount(n, eventTimeout, func(e taskEvent) bool { return got(e) })
	exits := 0
	for _, e := range rec.events(nil)[from:] {
		if got(e) {
			exits++
		}
	}
	res.burstExits += exits
	res.burstWant += n
	if exits != n {
		t.Errorf("%s: %d exit events for %d execs", prefix, exits, n)
	}
	for _, p := range procs {
		if _, err := p.Delete(ctx); err != nil {
			t.Errorf("delete %s: %v", p.ID(), err)
		}
	}
	deadline = time.Now().Add(eventTimeout)
	for cats() > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	left := cats()
	res.burstLeft += left
	if left != 0 {
		t.Errorf("%s: %d cats (of 500 orphans and %d execs) still under the shim: not reaped", prefix, left, n)
	}
}

// slowCreate creates a container of the same group through an OCI runtime wrapper that sleeps
// 3 s in `create`, and measures State and Kill (signal 0 is not sent: SIGCONT, harmless to
// sleep) of the keeper meanwhile. The figure is reported; the bound asserted is generous (1 s).
func slowCreate(t *testing.T, ctx context.Context, d *harness.Daemon, c *containerd.Client, res *loadResult,
	rt, group string, keep containerd.Task) {
	t.Helper()
	wrapper := runtimeWrapper(t, d.Paths.Runc(), "slow-runc", `[ "$cmd" = create ] && sleep 3`)
	id := "slow-" + shortName(rt)
	done := make(chan error, 1)
	var ctr containerd.Container
	var task containerd.Task
	startedAt := time.Now()
	go func() {
		var err error
		ctr, task, err = newTask(ctx, t, d, c, id, rt, runcBinary(wrapper), []oci.SpecOpts{grouped(group)}, "sleep", "1000")
		done <- err
	}()
	var lat []time.Duration
	var worstState, worstKill time.Duration
	for loop := true; loop; {
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("slow create: %v", err)
			}
			loop = false
			continue
		case <-time.After(50 * time.Millisecond):
		}
		s := time.Now()
		if st, err := keep.Status(ctx); err != nil || st.Status != containerd.Running {
			t.Errorf("State during a slow create: %v %v", st, err)
		}
		ds := time.Since(s)
		s = time.Now()
		if err := keep.Kill(ctx, syscall.SIGCONT); err != nil {
			t.Errorf("Kill during a slow create: %v", err)
		}
		dk := time.Since(s)
		lat = append(lat, ds, dk)
		worstState, worstKill = max(worstState, ds), max(worstKill, dk)
	}
	took := time.Since(startedAt)
	res.slowCreateMedian, _ = medianMax(lat)
	res.slowCreateState, res.slowCreateKill = worstState, worstKill
	t.Logf("create through the sleeping wrapper took %s; %d State/Kill calls meanwhile: median %s, max State %s, max Kill %s",
		took, len(lat)/2, res.slowCreateMedian, worstState, worstKill)
	if took < 3*time.Second {
		t.Errorf("create took %s: the wrapper did not sleep, nothing was measured", took)
	}
	if len(lat) < 10 {
		t.Errorf("only %d calls measured during the slow create", len(lat)/2)
	}
	if worstState > time.Second || worstKill > time.Second {
		t.Errorf("State/Kill of another container delayed by a slow create: max State %s, max Kill %s", worstState, worstKill)
	}
	if ctr != nil {
		forceRemove(ctx, ctr, task)
	}
}
