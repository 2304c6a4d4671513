//go:build bench && linux

package bench

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
)

// parallel runs f(0..n-1) on n goroutines at once and returns the wall time and the errors.
func parallel(n int, f func(int) error) (time.Duration, []error) {
	var wg sync.WaitGroup
	errs := make([]error, n)
	gate := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-gate
			errs[i] = f(i)
		}()
	}
	t0 := time.Now()
	close(gate)
	wg.Wait()
	d := time.Since(t0)
	var out []error
	for _, err := range errs {
		if err != nil {
			out = append(out, err)
		}
	}
	return d, out
}

// burst: N containers (each its own shim) created and started at once, then all SIGKILLed at
// once; every exit must reach the client exactly once.
func (b *bench) burst() {
	n := size("BURST", 50, 10)
	reps := size("BURST_REPS", 2, 1)
	start := map[string][]float64{}
	kill := map[string][]float64{}
	notes := map[string]string{}
	for i := 0; i < reps; i++ {
		for _, rt := range pair(i) {
			ctrs := make([]containerd.Container, n)
			tasks := make([]containerd.Task, n)
			// Container records and snapshots first, untimed (8 at a time).
			sem := make(chan struct{}, 8)
			_, errs := parallel(n, func(j int) error {
				sem <- struct{}{}
				defer func() { <-sem }()
				var err error
				ctrs[j], err = b.newContainer(fmt.Sprintf("burst-%d-%s-%d", i, short(rt), j), rt, nil, "sleep", "1000000")
				return err
			})
			cleanup := func() {
				parallel(n, func(j int) error {
					sem <- struct{}{}
					defer func() { <-sem }()
					if ctrs[j] != nil {
						b.remove(ctrs[j])
					}
					return nil
				})
			}
			if len(errs) > 0 {
				cleanup()
				b.t.Fatalf("%s: create containers: %v", rt, errs[0])
			}
			d, errs := parallel(n, func(j int) error {
				var err error
				tasks[j], err = b.startTask(ctrs[j])
				return err
			})
			if len(errs) > 0 {
				cleanup()
				b.t.Fatalf("%s: %d of %d starts failed, first: %v", rt, len(errs), n, errs[0])
			}
			start[rt] = append(start[rt], d.Seconds())
			keys := make([]exitKey, n)
			evs := make([]<-chan time.Time, n)
			for j, c := range ctrs {
				keys[j] = exitKey{c.ID(), c.ID()}
				evs[j] = b.hub.expect(keys[j])
			}
			t0 := time.Now()
			_, errs = parallel(n, func(j int) error { return tasks[j].Kill(b.ctx, 9) })
			var last time.Time
			lost := 0
			for _, ev := range evs {
				select {
				case at := <-ev:
					if at.After(last) {
						last = at
					}
				case <-time.After(60 * time.Second):
					lost++
				}
			}
			if len(errs) > 0 || lost > 0 {
				cleanup()
				b.t.Fatalf("%s: %d kills failed (%v), %d exits not received within 60s", rt, len(errs), errs, lost)
			}
			kill[rt] = append(kill[rt], last.Sub(t0).Seconds())
			time.Sleep(time.Second) // room for a duplicate to show up
			once, missing, dup := b.hub.tally(keys)
			notes[rt] = fmt.Sprintf("%s: %d/%d exits once, %d missing, %d duplicated", short(rt), once, n, missing, dup)
			if once != n {
				b.t.Errorf("%s: %s", rt, notes[rt])
			}
			cleanup()
		}
	}
	b.add(row{Figure: fmt.Sprintf("burst: %d containers created and started at once", n), Unit: "s",
		Ours: start[ours], Ref: start[ref], Target: "≤ 0.9", Max: 0.9, Note: "NewTask+Start, one shim each"})
	b.add(row{Figure: fmt.Sprintf("burst: SIGKILL of the %d → last /tasks/exit", n), Unit: "s",
		Ours: kill[ours], Ref: kill[ref], Target: "≤ 0.9", Max: 0.9, Note: notes[ours] + "; " + notes[ref]})
}

// execStorm: N execs of /bin/true started at once in one container; every exit must arrive
// once, and the shim's fds and threads must come back to their level before the storm.
func (b *bench) execStorm() {
	n := size("STORM", 300, 50)
	reps := size("STORM_REPS", 2, 1)
	keep := b.keepers("storm")
	wall := map[string][]float64{}
	notes := map[string]string{}
	base := map[string]procCounts{}
	shims := map[string]int{}
	for rt, task := range keep {
		shim, err := shimOf(task.Pid())
		if err != nil {
			b.t.Fatal(err)
		}
		shims[rt] = shim
		for k := 0; k < 3; k++ { // warm-up
			if _, err := b.execOnce(task, fmt.Sprintf("warm%d", k), "/bin/true"); err != nil {
				b.t.Fatalf("%s: %v", rt, err)
			}
		}
	}
	time.Sleep(settle())
	for rt := range keep {
		var err error
		if base[rt], err = readCounts(shims[rt]); err != nil {
			b.t.Fatal(err)
		}
	}
	for i := 0; i < reps; i++ {
		for _, rt := range pair(i) {
			task := keep[rt]
			spec := b.execSpec(task, "/bin/true")
			keys := make([]exitKey, n)
			var bad atomic.Int64
			d, errs := parallel(n, func(j int) error {
				id := fmt.Sprintf("s%d-%d", i, j)
				keys[j] = exitKey{task.ID(), id}
				p, err := task.Exec(b.ctx, id, spec, cio.NullIO)
				if err != nil {
					return err
				}
				defer func() { _, _ = p.Delete(b.ctx, containerd.WithProcessKill) }()
				ch, err := p.Wait(b.ctx)
				if err != nil {
					return err
				}
				if err := p.Start(b.ctx); err != nil {
					return err
				}
				if st := <-ch; st.ExitCode() != 0 {
					bad.Add(1)
				}
				return nil
			})
			if len(errs) > 0 {
				b.t.Fatalf("%s: %d of %d execs failed, first: %v", rt, len(errs), n, errs[0])
			}
			wall[rt] = append(wall[rt], d.Seconds())
			time.Sleep(time.Second)
			once, missing, dup := b.hub.tally(keys)
			// Back to baseline: poll for a while (pipes and pidfds close a little after Delete).
			var after procCounts
			for deadline := time.Now().Add(10 * time.Second); ; {
				var err error
				if after, err = readCounts(shims[rt]); err != nil {
					b.t.Fatal(err)
				}
				if after.FDs <= base[rt].FDs && after.Threads <= base[rt].Threads || time.Now().After(deadline) {
					break
				}
				time.Sleep(200 * time.Millisecond)
			}
			notes[rt] = fmt.Sprintf("%s: %d/%d exits once (%d missing, %d dup, %d nonzero), %s → %s",
				short(rt), once, n, missing, dup, bad.Load(), base[rt], after)
			if once != n || bad.Load() != 0 {
				b.t.Errorf("%s: %s", rt, notes[rt])
			}
		}
	}
	b.add(row{Figure: fmt.Sprintf("exec storm: %d concurrent execs in one container", n), Unit: "s",
		Ours: wall[ours], Ref: wall[ref], Target: "all exits; fds, threads back", Note: notes[ours] + "; " + notes[ref]})
}
