//go:build bench && linux

package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"syscall"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/custom-shim/containerd-shim-custom-v1/tests/harness"
)

// pods: pause-less pods (ours, handler custom-sandboxed: the shim's Sandbox API, no pause
// container) against the pause path of the reference (handler runc: containerd-shim-runc-v2 and
// a pause container: the test image's pause is a static C program, as Kubernetes' own, 44 KiB
// RssAnon), through the CRI API of a CRI-enabled containerd 2.4, interleaved, for 1 pod and for
// POD_BATCH pods started at once: RunPodSandbox latency, pod start (RunPodSandbox +
// CreateContainer + StartContainer of its one container), and the private memory of an idle pod
// (its shim plus its sandbox process: the shim's holder, or the pause process; the container's
// own process is the same on both sides and left out), per pod.
func (b *bench) pods() {
	reps := size("POD_REPS", 10, 2)
	batch := size("POD_BATCH", 10, 3)
	spec := harness.CRIDaemons(b.paths)[0] // containerd 2.4
	c := harness.StartCRI(b.t, spec, b.paths)
	handlers := map[string]string{ours: harness.HandlerCustomSandboxed, ref: harness.HandlerRunc}
	for _, n := range []int{1, batch} {
		runPod, podStart := map[string][]float64{}, map[string][]float64{}
		mem := map[string][]memStat{}
		for i := range reps {
			for _, rt := range pair(i) {
				pods := make([]*podRun, n)
				for k := range pods {
					pods[k] = &podRun{c: c, handler: handlers[rt], name: fmt.Sprintf("bench-%d-%d-%d-%s", n, i, k, short(rt)), cgroup: c.CgroupParent}
				}
				sandbox, first := b.startPods(rt, pods)
				runPod[rt] = append(runPod[rt], sandbox...)
				podStart[rt] = append(podStart[rt], first...)
				time.Sleep(settle())
				var sum memStat
				for _, p := range pods {
					m, err := p.memory()
					if err != nil {
						b.t.Fatalf("%s: %v", rt, err)
					}
					sum = sum.add(m)
				}
				mem[rt] = append(mem[rt], sum.div(float64(n)))
				for _, p := range pods {
					if err := p.remove(); err != nil {
						b.t.Fatalf("%s: %v", rt, err)
					}
				}
			}
		}
		what := "1 pod"
		if n > 1 {
			what = fmt.Sprintf("%d pods at once", n)
		}
		b.add(row{Figure: "pod (" + what + "): RunPodSandbox", Unit: "ms", Ours: runPod[ours], Ref: runPod[ref],
			Note: "pause-less (custom-sandboxed) vs the reference's pause path (a static C pause)"})
		b.add(row{Figure: "pod (" + what + "): start to its container running", Unit: "ms", Ours: podStart[ours], Ref: podStart[ref],
			Target: "≤ 0.6", Max: 0.6, Note: "RunPodSandbox + CreateContainer + StartContainer"})
		b.podMemoryRows("pod ("+what+"): memory of an idle pod (shim + holder / pause), per pod", mem, "")
	}
	b.podsIdle(c, handlers)
}

// podMemoryRows adds a row of RssAnon and one of Pss, target ≤ 0.75.
func (b *bench) podMemoryRows(figure string, mem map[string][]memStat, note string) {
	for _, f := range []struct {
		name string
		f    func(memStat) float64
	}{
		{"RssAnon", func(m memStat) float64 { return m.RssAnon }},
		{"Pss", func(m memStat) float64 { return m.Pss }},
	} {
		var o, r []float64
		for _, m := range mem[ours] {
			o = append(o, f.f(m))
		}
		for _, m := range mem[ref] {
			r = append(r, f.f(m))
		}
		b.add(row{Figure: figure + ": " + f.name, Unit: "KiB", Ours: o, Ref: r, Target: "≤ 0.75", Max: 0.75, Note: note})
	}
}

// podsIdle: the memory of a pod as a node holds it for as long as the pod lives, not only the
// second after its start (the figure above, read right after the shims gave their free pages
// back): containerd 2.4's CRI plugin asks every container's Stats and every sandbox's Metrics
// every second, and under those requests and the collections they bring each shim's Go runtime
// grows past its start-up minimum, to a level it then keeps. One pod of each side, both alive
// at once, sampled every 2 s from the middle of BENCH_POD_IDLE_S to its end; each sample is the
// mean of a pod's samples.
func (b *bench) podsIdle(c *harness.CRI, handlers map[string]string) {
	reps := size("POD_IDLE_REPS", 3, 1)
	idle := time.Duration(size("POD_IDLE_S", 60, 20)) * time.Second
	mem := map[string][]memStat{}
	for i := range reps {
		pods := map[string]*podRun{}
		for _, rt := range pair(i) {
			p := &podRun{c: c, handler: handlers[rt], name: fmt.Sprintf("bench-idle-%d-%s", i, short(rt)), cgroup: c.CgroupParent}
			if _, _, err := p.start(); err != nil {
				b.t.Fatalf("%s: %v", rt, err)
			}
			pods[rt] = p
		}
		began := time.Now()
		time.Sleep(idle / 2)
		sums, n := map[string]memStat{}, 0
		for time.Since(began) < idle {
			for rt, p := range pods {
				m, err := p.memory()
				if err != nil {
					b.t.Fatalf("%s: %v", rt, err)
				}
				sums[rt] = sums[rt].add(m)
			}
			n++
			time.Sleep(2 * time.Second)
		}
		for rt, p := range pods {
			mem[rt] = append(mem[rt], sums[rt].div(float64(n)))
			if err := p.remove(); err != nil {
				b.t.Fatalf("%s: %v", rt, err)
			}
		}
	}
	b.podMemoryRows("pod (idle "+idle.String()+"): memory of an idle pod (shim + holder / pause)", mem,
		"one pod each, both alive; mean of samples every 2 s from "+(idle/2).String()+" to "+idle.String()+", under the CRI plugin's stats every second")
}

// startPods starts pods at once (each on a goroutine of its own) and returns each one's
// RunPodSandbox and pod start latencies.
func (b *bench) startPods(rt string, pods []*podRun) (sandbox, first []float64) {
	type result struct {
		sandbox, first time.Duration
		err            error
	}
	results := make([]result, len(pods))
	var wg sync.WaitGroup
	for k, p := range pods {
		wg.Go(func() {
			s, f, err := p.start()
			results[k] = result{s, f, err}
		})
	}
	wg.Wait()
	for _, r := range results {
		if r.err != nil {
			b.t.Fatalf("%s: %v", rt, r.err)
		}
		sandbox, first = append(sandbox, ms(r.sandbox)), append(first, ms(r.first))
	}
	return sandbox, first
}

// podRun is one pod of the pods phase: a host-network pod with one idle container.
type podRun struct {
	c             *harness.CRI
	handler, name string
	cgroup        string
	pod, ctr      string
	shim          int // the pod's shim, once memory read it
}

func (p *podRun) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), harness.CRITimeout)
}

// start runs the pod and its container; it returns how long RunPodSandbox took, and how long
// from the start of RunPodSandbox until StartContainer returned.
func (p *podRun) start() (sandbox, first time.Duration, err error) {
	ctx, cancel := p.ctx()
	defer cancel()
	cfg := &runtimeapi.PodSandboxConfig{
		Metadata: &runtimeapi.PodSandboxMetadata{Name: p.name, Uid: p.name + "-uid", Namespace: "bench"},
		Linux: &runtimeapi.LinuxPodSandboxConfig{
			CgroupParent: p.cgroup,
			SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
				NamespaceOptions: &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_NODE},
			},
		},
	}
	began := time.Now()
	resp, err := p.c.Runtime.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: cfg, RuntimeHandler: p.handler})
	if err != nil {
		return 0, 0, fmt.Errorf("RunPodSandbox (%s): %w", p.handler, err)
	}
	sandbox = time.Since(began)
	p.pod = resp.PodSandboxId
	cc, err := p.c.Runtime.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: p.pod, SandboxConfig: cfg,
		Config: &runtimeapi.ContainerConfig{
			Metadata: &runtimeapi.ContainerMetadata{Name: "idle"},
			Image:    &runtimeapi.ImageSpec{Image: harness.ImageBusybox.Ref},
			Command:  []string{"sleep", "1000000"},
			Linux:    &runtimeapi.LinuxContainerConfig{},
		}})
	if err != nil {
		return 0, 0, fmt.Errorf("CreateContainer: %w", err)
	}
	p.ctr = cc.ContainerId
	if _, err := p.c.Runtime.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: p.ctr}); err != nil {
		return 0, 0, fmt.Errorf("StartContainer: %w", err)
	}
	return sandbox, time.Since(began), nil
}

// memory is the pod's private memory: its shim's and its sandbox process's (the pause process,
// or the shim's holder).
func (p *podRun) memory() (memStat, error) {
	ctx, cancel := p.ctx()
	defer cancel()
	st, err := p.c.Runtime.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: p.pod, Verbose: true})
	if err != nil {
		return memStat{}, err
	}
	var info struct {
		Pid uint32 `json:"pid"`
	}
	if err := json.Unmarshal([]byte(st.GetInfo()["info"]), &info); err != nil || info.Pid == 0 {
		return memStat{}, fmt.Errorf("pod %s: no pid in its verbose info (%v): %q", p.pod, err, st.GetInfo()["info"])
	}
	shim, err := shimOf(info.Pid)
	if err != nil {
		return memStat{}, err
	}
	p.shim = shim
	sm, err := readMem(shim)
	if err != nil {
		return memStat{}, err
	}
	hm, err := readMem(int(info.Pid))
	if err != nil {
		return memStat{}, err
	}
	return sm.add(hm), nil
}

func (p *podRun) remove() error {
	ctx, cancel := p.ctx()
	defer cancel()
	if _, err := p.c.Runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: p.pod}); err != nil {
		return fmt.Errorf("StopPodSandbox: %w", err)
	}
	if _, err := p.c.Runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: p.pod}); err != nil {
		return fmt.Errorf("RemovePodSandbox: %w", err)
	}
	// The next pods are measured alone: a shim still exiting would share its pages with theirs
	// and lower their Pss (ours keeps answering for 2 s after its pod's ShutdownSandbox).
	for p.shim != 0 && syscall.Kill(p.shim, 0) == nil {
		if ctx.Err() != nil {
			return fmt.Errorf("pod %s: its shim %d still runs after RemovePodSandbox", p.pod, p.shim)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}
