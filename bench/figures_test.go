//go:build bench && linux

package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

const sandboxKey = "io.kubernetes.cri.sandbox-id"

func grouped(g string) oci.SpecOpts { return oci.WithAnnotations(map[string]string{sandboxKey: g}) }

// settle is how long a shim is left alone before its memory is read.
func settle() time.Duration { return time.Duration(size("SETTLE_MS", 1000, 500)) * time.Millisecond }

// memory: the shim of 1 idle container, and of a group of N containers sharing one shim (same
// sandbox id), with the marginal cost of each container past the first.
func (b *bench) memory() {
	reps := size("MEM_REPS", 3, 1)
	n := size("GROUP", 10, 10)
	idle := map[string][]memStat{}
	group := map[string][]memStat{}
	marginal := map[string][]memStat{}
	floorBin := b.floorProgram()
	var floor, floorGC []memStat
	for i := 0; i < reps; i++ {
		for _, gc := range []int{0, floorGCs} {
			m, err := b.floorMemory(floorBin, gc)
			if err != nil {
				b.t.Fatalf("floor (%d collections): %v", gc, err)
			}
			if gc > 0 {
				floorGC = append(floorGC, m)
			} else {
				floor = append(floor, m)
			}
		}
		for _, rt := range pair(i) {
			// 1 idle container, its own shim.
			ctr := b.mustContainer(fmt.Sprintf("mem-%d-%s", i, short(rt)), rt, nil, "sleep", "1000000")
			m, err := b.shimMemory(ctr)
			if err != nil {
				b.t.Fatalf("%s: %v", rt, err)
			}
			idle[rt] = append(idle[rt], m)
			b.remove(ctr)

			// N containers, one shim.
			g := fmt.Sprintf("memgrp-%d-%s", i, short(rt))
			var ctrs []containerd.Container
			var first memStat
			for j := 0; j < n; j++ {
				ctr := b.mustContainer(fmt.Sprintf("%s-%d", g, j), rt, []oci.SpecOpts{grouped(g)}, "sleep", "1000000")
				ctrs = append(ctrs, ctr)
				if j == 0 {
					if first, err = b.shimMemory(ctr); err != nil {
						b.t.Fatalf("%s: %v", rt, err)
					}
					continue
				}
				if _, err := b.startTask(ctr); err != nil {
					b.t.Fatalf("%s: start %d of group: %v", rt, j, err)
				}
			}
			time.Sleep(settle())
			task, err := ctrs[0].Task(b.ctx, nil)
			if err != nil {
				b.t.Fatal(err)
			}
			shim, err := shimOf(task.Pid())
			if err != nil {
				b.t.Fatal(err)
			}
			all, err := readMem(shim)
			if err != nil {
				b.t.Fatal(err)
			}
			group[rt] = append(group[rt], all)
			marginal[rt] = append(marginal[rt], all.sub(first).div(float64(n-1)))
			for _, c := range ctrs {
				b.remove(c)
			}
		}
	}
	pick := func(ms []memStat, f func(memStat) float64) []float64 {
		var out []float64
		for _, m := range ms {
			out = append(out, f(m))
		}
		return out
	}
	fields := []struct {
		name string
		f    func(memStat) float64
	}{
		{"RssAnon", func(m memStat) float64 { return m.RssAnon }},
		{"VmRSS", func(m memStat) float64 { return m.VmRSS }},
		{"Pss", func(m memStat) float64 { return m.Pss }},
	}
	for _, set := range []struct {
		what  string
		m     map[string][]memStat
		floor bool
	}{
		{"1 idle container", idle, true},
		{fmt.Sprintf("%d-container group", n), group, true},
		{"marginal per container", marginal, false},
	} {
		for _, f := range fields {
			r := row{Figure: "shim memory, " + set.what + ": " + f.name, Unit: "KiB",
				Ours: pick(set.m[ours], f.f), Ref: pick(set.m[ref], f.f), Target: "≤ 0.5", Max: 0.5}
			if set.floor {
				r.Floor = pick(floor, f.f)
				r.Note = fmt.Sprintf("floor: bench/floor (the import set + a ttrpc listener, no GC yet); after %d forced GCs as pkg/shim's (one per 30 s): %s",
					floorGCs, num(median(pick(floorGC, f.f))))
			}
			b.add(r)
		}
	}
}

// shimMemory starts ctr's task, waits settle() and reads its shim's memory.
func (b *bench) shimMemory(ctr containerd.Container) (memStat, error) {
	task, err := b.startTask(ctr)
	if err != nil {
		return memStat{}, err
	}
	time.Sleep(settle())
	shim, err := shimOf(task.Pid())
	if err != nil {
		return memStat{}, err
	}
	return readMem(shim)
}

// startOverhead: create+start+wait+delete of a task running /bin/true (each task its own
// shim), against the floor: `runc run` of the same bundle without containerd.
func (b *bench) startOverhead() {
	n := size("START_N", 30, 5)
	ctrs := map[string]containerd.Container{}
	for _, rt := range []string{ref, ours} {
		ctrs[rt] = b.mustContainer("start-"+short(rt), rt, nil, "/bin/true")
	}
	floor := b.floorBundle(ctrs[ref])
	total := map[string][]float64{}
	over := map[string][]float64{}
	var floors []float64
	for i := -1; i < n; i++ { // i == -1: warm-up, not recorded
		f, err := floor(i)
		if err != nil {
			b.t.Fatalf("floor: %v", err)
		}
		for _, rt := range pair(i + 2) {
			d, err := b.lifecycle(ctrs[rt])
			if err != nil {
				b.t.Fatalf("%s: %v", rt, err)
			}
			if i >= 0 {
				total[rt] = append(total[rt], ms(d))
				over[rt] = append(over[rt], ms(d-f))
			}
		}
		if i >= 0 {
			floors = append(floors, ms(f))
		}
	}
	b.add(row{Figure: "container start: create+start+wait+delete of /bin/true", Unit: "ms",
		Ours: total[ours], Ref: total[ref], Floor: floors, Target: "≤ 0.9", Max: 0.9,
		Note: "floor: `runc run` of the same bundle"})
	b.add(row{Figure: "container start: overhead over the floor", Unit: "ms",
		Ours: over[ours], Ref: over[ref], Target: "≤ 0.6", Max: 0.6, Note: "per iteration: total − runc run"})
}

// lifecycle times NewTask, Start, the exit and Delete of a task of ctr.
func (b *bench) lifecycle(ctr containerd.Container) (time.Duration, error) {
	t0 := time.Now()
	task, err := ctr.NewTask(b.ctx, cio.NullIO)
	if err != nil {
		return 0, err
	}
	ch, err := task.Wait(b.ctx)
	if err == nil {
		err = task.Start(b.ctx)
	}
	if err != nil {
		_, _ = task.Delete(b.ctx, containerd.WithProcessKill)
		return 0, err
	}
	st := <-ch
	if _, err := task.Delete(b.ctx); err != nil {
		return 0, err
	}
	d := time.Since(t0)
	if st.ExitCode() != 0 {
		return 0, fmt.Errorf("/bin/true exited %d (%v)", st.ExitCode(), st.Error())
	}
	b.hub.forget(exitKey{ctr.ID(), ctr.ID()})
	return d, nil
}

// floorBundle mounts ctr's snapshot as the rootfs of a private bundle holding ctr's spec, and
// returns a function timing one `runc run` of it (stdio /dev/null, like the tasks' null IO).
func (b *bench) floorBundle(ctr containerd.Container) func(i int) (time.Duration, error) {
	info, err := ctr.Info(b.ctx)
	if err != nil {
		b.t.Fatal(err)
	}
	spec, err := ctr.Spec(b.ctx)
	if err != nil {
		b.t.Fatal(err)
	}
	dir := filepath.Join(b.d.Dir, "floor")
	rootfs := filepath.Join(dir, "rootfs")
	runcRoot := filepath.Join(dir, "runc")
	for _, p := range []string{rootfs, runcRoot} {
		if err := os.MkdirAll(p, 0o755); err != nil {
			b.t.Fatal(err)
		}
	}
	mounts, err := b.c.SnapshotService(info.Snapshotter).Mounts(b.ctx, info.SnapshotKey)
	if err != nil {
		b.t.Fatal(err)
	}
	if err := mount.All(mounts, rootfs); err != nil {
		b.t.Fatalf("mount the floor's rootfs: %v", err)
	}
	b.t.Cleanup(func() {
		if err := mount.UnmountAll(rootfs, 0); err != nil {
			b.t.Errorf("unmount %s: %v", rootfs, err)
		}
		_ = os.RemoveAll(dir)
	})
	spec.Root = &specs.Root{Path: "rootfs"}
	spec.Linux.CgroupsPath = "/" + b.d.Namespace + "/bench-floor"
	raw, err := json.Marshal(spec)
	if err != nil {
		b.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), raw, 0o644); err != nil {
		b.t.Fatal(err)
	}
	return func(i int) (time.Duration, error) {
		cmd := exec.Command(b.paths.Runc(), "--root", runcRoot, "run", "--bundle", dir, fmt.Sprintf("floor-%d", i+1))
		t0 := time.Now()
		out, err := cmd.CombinedOutput()
		d := time.Since(t0)
		if err != nil {
			return 0, fmt.Errorf("runc run: %v: %s", err, out)
		}
		return d, nil
	}
}

// execLatency: exec /bin/true in a running container: Exec, Start, exit, Delete.
func (b *bench) execLatency() {
	n := size("EXEC_N", 200, 20)
	keep := b.keepers("exec")
	lat := map[string][]float64{}
	var floor []float64
	for i := -3; i < n; i++ { // 3 warm-ups
		// The floor: `runc exec` of /bin/true in the reference's keeper, no shim, no containerd
		// (both shims keep runc state in /run/containerd/runc/<namespace>).
		cmd := exec.Command(b.paths.Runc(), "--root", filepath.Join("/run/containerd/runc", b.d.Namespace),
			"exec", keep[ref].ID(), "/bin/true")
		t0 := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			b.t.Fatalf("runc exec: %v: %s", err, out)
		}
		if i >= 0 {
			floor = append(floor, ms(time.Since(t0)))
		}
		for _, rt := range pair(i + 4) {
			d, err := b.execOnce(keep[rt], fmt.Sprintf("x%d", i+3), "/bin/true")
			if err != nil {
				b.t.Fatalf("%s: %v", rt, err)
			}
			if i >= 0 {
				lat[rt] = append(lat[rt], ms(d))
			}
		}
	}
	b.add(row{Figure: "exec latency of /bin/true (exec+start+exit+delete)", Unit: "ms",
		Ours: lat[ours], Ref: lat[ref], Floor: floor, Target: "≤ 0.9", Max: 0.9,
		Note: fmt.Sprintf("n=%d each; floor: `runc exec` in the same container", n)})
}

// keepers starts one long-running container per runtime for a phase.
func (b *bench) keepers(phase string, opts ...oci.SpecOpts) map[string]containerd.Task {
	keep := map[string]containerd.Task{}
	for _, rt := range []string{ref, ours} {
		ctr := b.mustContainer(phase+"-keep-"+short(rt), rt, opts, "sleep", "1000000")
		task, err := b.startTask(ctr)
		if err != nil {
			b.t.Fatalf("%s: start keeper: %v", rt, err)
		}
		keep[rt] = task
	}
	return keep
}

// execSpec is the keeper's process spec running args.
func (b *bench) execSpec(task containerd.Task, args ...string) *specs.Process {
	ctr, err := b.c.LoadContainer(b.ctx, task.ID())
	if err != nil {
		b.t.Fatal(err)
	}
	spec, err := ctr.Spec(b.ctx)
	if err != nil {
		b.t.Fatal(err)
	}
	p := *spec.Process
	p.Args = args
	p.Terminal = false
	return &p
}

// execOnce times one exec of args in task, to its exit and delete.
func (b *bench) execOnce(task containerd.Task, id string, args ...string) (time.Duration, error) {
	spec := b.execSpec(task, args...)
	t0 := time.Now()
	p, err := task.Exec(b.ctx, id, spec, cio.NullIO)
	if err != nil {
		return 0, err
	}
	ch, err := p.Wait(b.ctx)
	if err == nil {
		err = p.Start(b.ctx)
	}
	if err != nil {
		_, _ = p.Delete(b.ctx, containerd.WithProcessKill)
		return 0, err
	}
	st := <-ch
	_, err = p.Delete(b.ctx)
	d := time.Since(t0)
	if err == nil && st.ExitCode() != 0 {
		err = fmt.Errorf("exec %s exited %d (%v)", id, st.ExitCode(), st.Error())
	}
	b.hub.forget(exitKey{task.ID(), id})
	return d, err
}

// exitLatency: from the moment a process exits (its pidfd turns readable; the process is
// SIGKILLed directly, not through the shim) to the client receiving its /tasks/exit; for execs
// in a running container and for container inits. The exec figure is split, with the stamps the
// shim puts on the event, into the shim's part (exit → event handed to its publisher) and the
// rest (publish → containerd → client), whose floor is the same event forwarded to containerd's
// ttrpc events service by the benchmark itself: what any shim pays after its own work.
func (b *bench) exitLatency() {
	n := size("EXIT_N", 100, 10)
	ni := size("EXIT_INIT_N", 30, 5)
	keep := b.keepers("exit")
	execLat := map[string][]float64{}
	reaped := map[string][]float64{}
	inShim := map[string][]float64{}
	delivery := map[string][]float64{}
	fwd, err := dialEvents(b.d.TTRPCAddress())
	if err != nil {
		b.t.Fatal(err)
	}
	defer fwd.Close()
	var floor []float64
	for i := -2; i < n; i++ {
		d, err := fwd.timeForward(b.ctx, b.hub, b.d.Namespace, fmt.Sprintf("f%d", i+2))
		if err != nil {
			b.t.Fatalf("floor: %v", err)
		}
		if i >= 0 {
			floor = append(floor, ms(d))
		}
		for _, rt := range pair(i + 2) {
			tm, err := b.execExitLatency(keep[rt], fmt.Sprintf("e%d", i+2))
			if err != nil {
				b.t.Fatalf("%s: %v", rt, err)
			}
			if i >= 0 {
				execLat[rt] = append(execLat[rt], ms(tm.total))
				reaped[rt] = append(reaped[rt], ms(tm.reaped))
				inShim[rt] = append(inShim[rt], ms(tm.inShim))
				delivery[rt] = append(delivery[rt], ms(tm.total-tm.inShim))
			}
		}
	}
	ctrs := map[string]containerd.Container{}
	for _, rt := range []string{ref, ours} {
		ctrs[rt] = b.mustContainer("exitinit-"+short(rt), rt, nil, "sleep", "1000000")
	}
	initLat := map[string][]float64{}
	for i := -1; i < ni; i++ {
		for _, rt := range pair(i + 2) {
			tm, err := b.initExitLatency(ctrs[rt])
			if err != nil {
				b.t.Fatalf("%s: %v", rt, err)
			}
			if i >= 0 {
				initLat[rt] = append(initLat[rt], ms(tm.total))
			}
		}
	}
	b.add(row{Figure: "exit-event latency, exec (exit → /tasks/exit at the client)", Unit: "ms",
		Ours: execLat[ours], Ref: execLat[ref], Floor: floor, Target: "≤ 0.8", Max: 0.8,
		Note: fmt.Sprintf("n=%d each; floor: the same event forwarded to containerd by the benchmark (no shim)", n)})
	b.add(row{Figure: "  of which until reaped (exit → the event's exited_at)", Unit: "ms",
		Ours: reaped[ours], Ref: reaped[ref], Target: "report"})
	b.add(row{Figure: "  of which in the shim (exit → event sent)", Unit: "ms",
		Ours: inShim[ours], Ref: inShim[ref], Target: "report", Note: "the event's envelope timestamp"})
	b.add(row{Figure: "  of which publish → containerd → client", Unit: "ms",
		Ours: delivery[ours], Ref: delivery[ref], Floor: floor, Target: "report"})
	b.add(row{Figure: "exit-event latency, container init", Unit: "ms",
		Ours: initLat[ours], Ref: initLat[ref], Target: "≤ 0.8", Max: 0.8, Note: fmt.Sprintf("n=%d each", ni)})
}

// exitTiming is one exit's latency, and the parts of it until the shim reaped the process and
// until it sent the event.
type exitTiming struct{ total, reaped, inShim time.Duration }

func (b *bench) execExitLatency(task containerd.Task, id string) (exitTiming, error) {
	p, err := task.Exec(b.ctx, id, b.execSpec(task, "sleep", "1000000"), cio.NullIO)
	if err != nil {
		return exitTiming{}, err
	}
	defer func() { _, _ = p.Delete(b.ctx, containerd.WithProcessKill) }()
	ch, err := p.Wait(b.ctx)
	if err != nil {
		return exitTiming{}, err
	}
	if err := p.Start(b.ctx); err != nil {
		return exitTiming{}, err
	}
	tm, err := b.killAndTime(p.Pid(), exitKey{task.ID(), id})
	if err != nil {
		return exitTiming{}, fmt.Errorf("exec %s: %w", id, err)
	}
	<-ch
	return tm, nil
}

func (b *bench) initExitLatency(ctr containerd.Container) (exitTiming, error) {
	k := exitKey{ctr.ID(), ctr.ID()}
	b.hub.forget(k)
	task, err := b.startTask(ctr)
	if err != nil {
		return exitTiming{}, err
	}
	defer func() { _, _ = task.Delete(b.ctx, containerd.WithProcessKill) }()
	ch, err := task.Wait(b.ctx)
	if err != nil {
		return exitTiming{}, err
	}
	tm, err := b.killAndTime(task.Pid(), k)
	if err != nil {
		return exitTiming{}, fmt.Errorf("%s: %w", ctr.ID(), err)
	}
	<-ch
	return tm, nil
}

// killAndTime SIGKILLs pid through a pidfd, takes the exit time when the pidfd turns readable,
// and returns how long after that the exit event of k reached the client, and was sent by the
// shim.
func (b *bench) killAndTime(pid uint32, k exitKey) (exitTiming, error) {
	fd, err := unix.PidfdOpen(int(pid), 0)
	if err != nil {
		return exitTiming{}, fmt.Errorf("pidfd_open %d: %w", pid, err)
	}
	defer unix.Close(fd)
	ev := b.hub.expect(k)
	if err := unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0); err != nil {
		return exitTiming{}, fmt.Errorf("kill %d: %w", pid, err)
	}
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, 10000)
		if err == unix.EINTR {
			continue
		}
		if err != nil || n == 0 {
			return exitTiming{}, fmt.Errorf("poll pidfd of %d: %v (n=%d)", pid, err, n)
		}
		break
	}
	exited := time.Now()
	select {
	case got := <-ev:
		st := b.hub.stampsOf(k)
		return exitTiming{total: got.Sub(exited), reaped: st.Exited.Sub(exited), inShim: st.Sent.Sub(exited)}, nil
	case <-time.After(30 * time.Second):
		return exitTiming{}, fmt.Errorf("no /tasks/exit for %v within 30s", k)
	}
}
