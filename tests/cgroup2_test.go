//go:build integration && linux

package tests

// cgroup v2 rows: what the shim does with the files of a cgroup v2 (unified) host, each compared
// with the reference. Update writes memory.max, memory.swap.max, cpu.max, cpu.weight, pids.max
// and the io weight; Stats answers the v2 metrics type; Pause and Resume go through cgroup.freeze
// (an exec into a paused container is refused); memory.oom.group makes an OOM kill the whole
// container; ShimCgroup moves the shim into a v2 cgroup; CRI puts a container's cgroup below the
// pod's cgroup parent and updates it there. They need a cgroup v2 host: `make test-cgroup2` runs
// them in a cgroup v2 guest; `make integration` runs them where the host is cgroup v2 and leaves
// them out where it is not.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	cgroupsv2 "github.com/containerd/cgroups/v3/cgroup2/stats"
	"github.com/containerd/containerd/api/types/runc/options"
	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/typeurl/v2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/custom-shim/containerd-shim-custom-v1/tests/harness"
)

var cgroup2Scenarios = []scenario{
	{"v2-update", scenarioV2Update},
	{"v2-stats", scenarioV2Stats},
	{"v2-freeze", scenarioV2Freeze},
	{"v2-oom-group", scenarioV2OOMGroup},
	{"v2-shim-cgroup", scenarioV2ShimCgroup},
}

func init() {
	referenceBugs["containerd-1.6/v2-oom-group"] = "containerd-shim-runc-v2 1.6.20 on cgroup v2 sometimes publishes " +
		"/tasks/oom after the init's /tasks/exit, or none at all, when memory.oom.group kills the whole container " +
		"(its memory.events watch is read apart from the exit; both seen in the cgroup v2 guest); ours publishes it first"
}

var cgroup2CRIScenarios = []criScenario{
	{"v2-pod-cgroup", criV2PodCgroup},
	{"v2-pod-cgroup-systemd", criV2PodCgroupSystemd},
}

func TestCgroup2(t *testing.T) {
	requireCgroup2(t)
	runTable(t, cgroup2Scenarios)
}

func TestCgroup2CRI(t *testing.T) {
	requireCgroup2(t)
	runCRITable(t, cgroup2CRIScenarios)
}

// requireCgroup2 stops t on a cgroup v1 host as a missing prerequisite: it fails in CI. `make
// integration` leaves these tests out on a cgroup v1 host; `make test-cgroup2` runs them in a
// cgroup v2 guest.
func requireCgroup2(t *testing.T) {
	t.Helper()
	harness.Require(t, harness.CgroupV2(), "/sys/fs/cgroup is not a cgroup v2 hierarchy (`make test-cgroup2` runs these rows in a cgroup v2 guest)")
}

// cgroupDirV2 is the cgroup v2 dir of process pid.
func cgroupDirV2(t *testing.T, pid int) string {
	t.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if path, ok := strings.CutPrefix(line, "0::"); ok {
			return filepath.Join("/sys/fs/cgroup", path)
		}
	}
	t.Fatalf("process %d has no cgroup v2 entry: %q", pid, raw)
	return ""
}

// cgroupFile is the trimmed content of file in cgroup dir, or "(none)" where the kernel has no
// such file.
func cgroupFile(t *testing.T, dir, file string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, file))
	if errors.Is(err, os.ErrNotExist) {
		return "(none)"
	}
	if err != nil {
		t.Fatalf("read %s/%s: %v", dir, file, err)
	}
	return strings.TrimSpace(string(raw))
}

// cgroupKey is the value of key in a flat-keyed cgroup file (cgroup.events, memory.events).
func cgroupKey(t *testing.T, dir, file, key string) string {
	t.Helper()
	for _, line := range strings.Split(cgroupFile(t, dir, file), "\n") {
		if v, ok := strings.CutPrefix(line, key+" "); ok {
			return v
		}
	}
	return "(none)"
}

// limitsV2 notes the limit files runc writes for an update, as the kernel shows them.
func limitsV2(t *testing.T, dir string) string {
	t.Helper()
	var parts []string
	for _, f := range []string{"memory.max", "memory.swap.max", "cpu.max", "cpu.weight", "pids.max", "io.weight", "io.bfq.weight"} {
		parts = append(parts, f+"="+strings.ReplaceAll(cgroupFile(t, dir, f), "\n", ";"))
	}
	return strings.Join(parts, " ")
}

// Update reaches the v2 files: memory.max and memory.swap.max (memory+swap minus memory),
// cpu.max from quota and period, cpu.weight from shares, pids.max, the io weight from the blkio
// weight (where the kernel has a weight file).
func scenarioV2Update(r *row) *observation {
	a := newAPIRow(r)
	ctr, task := a.running("v2update")
	dir := cgroupDirV2(a.t, int(task.Pid()))
	a.note("before: %s", limitsV2(a.t, dir))
	limit, swap, quota, pids := int64(48<<20), int64(64<<20), int64(50000), int64(64)
	period, shares, weight := uint64(100000), uint64(512), uint16(500)
	res := &specs.LinuxResources{
		Memory: &specs.LinuxMemory{Limit: &limit, Swap: &swap},
		CPU:    &specs.LinuxCPU{Quota: &quota, Period: &period, Shares: &shares},
		Pids:   &specs.LinuxPids{Limit: &pids},
	}
	// runc writes a blkio weight to io.bfq.weight or io.weight, and fails where the kernel has
	// neither (no BFQ, no io cost model: the cgroup v2 guest's kernel).
	if cgroupFile(a.t, dir, "io.bfq.weight") != "(none)" || cgroupFile(a.t, dir, "io.weight") != "(none)" {
		res.BlockIO = &specs.LinuxBlockIO{Weight: &weight}
	}
	if err := task.Update(a.ctx, containerd.WithResources(res)); err != nil {
		a.t.Fatalf("update: %v", err)
	}
	after := limitsV2(a.t, dir)
	a.note("after: %s", after)
	for _, want := range []string{"memory.max=50331648", "memory.swap.max=16777216", "cpu.max=50000 100000", "pids.max=64"} {
		if !strings.Contains(after, want) {
			a.t.Errorf("after update: want %s in %s", want, after)
		}
	}
	a.remove(ctr, task)
	return a.observation()
}

// Stats answers io.containerd.cgroups.v2.Metrics with the pids, CPU and memory of the cgroup.
func scenarioV2Stats(r *row) *observation {
	a := newAPIRow(r)
	ctr, task := a.running("v2stats")
	m, err := task.Metrics(a.ctx)
	if err != nil {
		a.t.Fatalf("metrics: %v", err)
	}
	v, err := typeurl.UnmarshalAny(m.Data)
	if err != nil {
		a.t.Fatalf("decode metrics (%s): %v", m.Data.GetTypeUrl(), err)
	}
	a.note("metrics type: %s", m.Data.GetTypeUrl())
	v2, ok := v.(*cgroupsv2.Metrics)
	if !ok {
		a.t.Fatalf("metrics of a cgroup v2 container are %T, want the v2 type", v)
	}
	// pids.current counts tasks: right after start it may still count the threads of runc's
	// init, whose release lags its exec on a slow machine (seen: 6 for a moment, for both shims).
	a.note("pids current>0 %v, has cpu %v, memory usage>0 %v, memory events %v",
		v2.GetPids().GetCurrent() > 0, v2.GetCPU() != nil, v2.GetMemory().GetUsage() > 0, v2.GetMemoryEvents() != nil)
	if v2.GetPids().GetCurrent() == 0 || v2.GetMemory().GetUsage() == 0 || v2.GetCPU() == nil {
		a.t.Errorf("v2 metrics of a container running sleep: %+v", v2)
	}
	a.remove(ctr, task)
	return a.observation()
}

// Pause freezes the container's cgroup (cgroup.freeze 1, cgroup.events frozen 1); an exec into
// the paused container is refused; Resume thaws it and an exec runs again.
func scenarioV2Freeze(r *row) *observation {
	a := newAPIRow(r)
	ctr, task := a.running("v2freeze")
	dir := cgroupDirV2(a.t, int(task.Pid()))
	frozen := func(when string) {
		a.note("%s: cgroup.freeze %s, frozen %s", when, cgroupFile(a.t, dir, "cgroup.freeze"), cgroupKey(a.t, dir, "cgroup.events", "frozen"))
	}
	if err := task.Pause(a.ctx); err != nil {
		a.t.Fatalf("pause: %v", err)
	}
	frozen("paused")
	p, err := task.Exec(a.ctx, "in-paused", a.processSpec(ctr, "true"), cio.NullIO)
	if err == nil {
		err = p.Start(a.ctx)
		if _, derr := p.Delete(a.ctx, containerd.WithProcessKill); derr != nil {
			a.t.Logf("delete the refused exec: %v", derr)
		}
	}
	a.t.Logf("exec into the paused container: %v (%s)", err, class(err))
	a.note("exec into paused refused: %v", err != nil)
	if err == nil {
		a.t.Errorf("an exec into a paused container started")
	}
	if err := task.Resume(a.ctx); err != nil {
		a.t.Fatalf("resume: %v", err)
	}
	frozen("resumed")
	p, ch := a.startExec(ctr, task, "after-resume", "true")
	a.note("exec after resume: exit %d", (<-ch).ExitCode())
	a.deleteExec(p)
	a.remove(ctr, task)
	return a.observation()
}

// With memory.oom.group = 1 (what the kubelet asks for on cgroup v2) an OOM kill takes every
// process of the container: the shell init, which would survive its child's kill and exit 3,
// dies with it (137). /tasks/oom comes before the exit; memory.events counts the group kill and
// Stats the kill.
func scenarioV2OOMGroup(r *row) *observation {
	a := newAPIRow(r)
	id := a.id("v2oomgroup")
	group := func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		if s.Linux.Resources == nil {
			s.Linux.Resources = &specs.LinuxResources{}
		}
		s.Linux.Resources.Unified = map[string]string{"memory.oom.group": "1"}
		return nil
	}
	ctr, task, ch := a.runningSpec(id, []oci.SpecOpts{oci.WithMemoryLimit(oomLimit), group},
		"sh", "-c", "sleep 1000 & "+oomChildScript+"; exit 3")
	dir := cgroupDirV2(a.t, int(task.Pid()))
	a.note("memory.oom.group %s", cgroupFile(a.t, dir, "memory.oom.group"))
	st := <-ch
	a.note("exit %d", st.ExitCode())
	r.waitExit(id, id, st.ExitCode())
	if _, known := referenceBugs[r.Spec.Name+"/v2-oom-group"]; known && r.runtime == harness.RuntimeRunc {
		if _, ok := r.Events.Wait(r.from, eventTimeout, harness.TaskEvent(r.Namespace, id, "/tasks/oom")); !ok {
			a.t.Logf("known reference bug, not failing: no /tasks/oom for %s (%s); task events: %v",
				id, referenceBugs[r.Spec.Name+"/v2-oom-group"], r.events())
		}
	} else {
		r.expectOOMBeforeExit(id)
	}
	a.note("memory.events oom_group_kill>0 %v", cgroupKey(a.t, dir, "memory.events", "oom_group_kill") != "0")
	if st.ExitCode() != 137 {
		a.t.Errorf("init exit %d with memory.oom.group = 1, want 137 (killed with its child)", st.ExitCode())
	}
	m, err := task.Metrics(a.ctx)
	if err != nil {
		a.t.Fatalf("metrics after the OOM exit: %v", err)
	}
	if v, err := typeurl.UnmarshalAny(m.Data); err == nil {
		if v2, ok := v.(*cgroupsv2.Metrics); ok {
			a.note("metrics oom_kill>0 %v", v2.GetMemoryEvents().GetOomKill() > 0)
		}
	}
	if _, err := task.Delete(a.ctx); err != nil {
		a.t.Fatalf("delete task %s: %v", id, err)
	}
	a.deleteContainer(ctr)
	return oomObservation(&observation{Events: a.events(), Notes: a.notes})
}

// ShimCgroup (runc Options, as the container's runtime options) names a cgroup v2 path: the shim
// moves itself there.
func scenarioV2ShimCgroup(r *row) *observation {
	a := newAPIRow(r)
	rel := fmt.Sprintf("/%s-shim-%s", r.Namespace, r.short)
	dir := filepath.Join("/sys/fs/cgroup", rel)
	if err := os.Mkdir(dir, 0o755); err != nil {
		a.t.Fatal(err)
	}
	a.t.Cleanup(func() {
		deadline := time.Now().Add(10 * time.Second)
		for syscall.Rmdir(dir) != nil && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
		if _, err := os.Stat(dir); err == nil {
			a.t.Errorf("cgroup %s still exists (a process is left in it)", dir)
		}
	})
	id := a.id("v2shimcg")
	ctr, err := newContainerWithRuntime(a, id, &options.Options{ShimCgroup: rel}, "sleep", "1000")
	if err != nil {
		a.t.Fatalf("new container %s: %v", id, err)
	}
	task, _ := a.startTask(ctr)
	shim := r.expectShim()
	in := cgroupDirV2(a.t, shim.Pid) == dir
	a.note("shim in ShimCgroup: %v; container outside it: %v", in, cgroupDirV2(a.t, int(task.Pid())) != dir)
	if !in {
		a.t.Errorf("shim %s is in %s, not in ShimCgroup %s", shim, cgroupDirV2(a.t, shim.Pid), dir)
	}
	a.remove(ctr, task)
	return a.observation()
}

// CRI: a container's cgroup is below the pod's cgroup parent, with the limits of its config;
// UpdateContainerResources rewrites them.
func criV2PodCgroup(r *criRow) []string {
	pod, podCfg := r.runPod("v2cg")
	r.podCgroupLimits(pod, podCfg, filepath.Join("/sys/fs/cgroup", r.CgroupParent))
	r.removePod(pod)
	return r.notes
}

// The same through the systemd cgroup driver (SystemdCgroup = true, kubeadm's default): the pod's
// parent is a slice, the container a scope in it. It needs systemd as init (`make
// test-cgroup2-systemd` boots the guest so; the lane's other run leaves this row out).
func criV2PodCgroupSystemd(r *criRow) []string {
	st, err := os.Stat("/run/systemd/system")
	harness.Require(r.t, err == nil && st.IsDir(), "systemd is not the init (no /run/systemd/system): the systemd cgroup driver needs it")
	cfg := r.podConfig("v2sd")
	cfg.Linux.CgroupParent = "cstv2.slice"
	ctx, cancel := r.ctx()
	defer cancel()
	resp, err := r.Runtime.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: cfg, RuntimeHandler: r.handler("-systemd")})
	if err != nil {
		r.t.Fatalf("RunPodSandbox %s (handler %s): %v", cfg.Metadata.Name, r.handler("-systemd"), err)
	}
	r.podCgroupLimits(resp.PodSandboxId, cfg, "/sys/fs/cgroup/cstv2.slice")
	r.removePod(resp.PodSandboxId)
	return r.notes
}

// podCgroupLimits runs a container with limits in pod, checks its cgroup is below parent and
// notes its limit files, updates them and notes them again.
func (r *criRow) podCgroupLimits(pod string, podCfg *runtimeapi.PodSandboxConfig, parent string) {
	r.t.Helper()
	cfg := containerConfig("c", sleeper...)
	cfg.Linux.Resources = &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 64 << 20, CpuShares: 512, CpuQuota: 20000, CpuPeriod: 100000}
	c := r.run(pod, podCfg, cfg)
	dir := cgroupDirV2(r.t, r.containerPid(c))
	r.t.Logf("container cgroup: %s", dir)
	r.note("below the pod's cgroup parent: %v", filepath.Dir(dir) == parent)
	if filepath.Dir(dir) != parent {
		r.t.Errorf("container cgroup %s is not below the cgroup parent %s", dir, parent)
	}
	limits := func(when string) {
		r.note("%s: memory.max %s, cpu.max %s, cpu.weight %s, pids.max %s", when, cgroupFile(r.t, dir, "memory.max"),
			cgroupFile(r.t, dir, "cpu.max"), cgroupFile(r.t, dir, "cpu.weight"), cgroupFile(r.t, dir, "pids.max"))
	}
	limits("at start")
	ctx, cancel := r.ctx()
	defer cancel()
	if _, err := r.Runtime.UpdateContainerResources(ctx, &runtimeapi.UpdateContainerResourcesRequest{
		ContainerId: c,
		Linux:       &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 128 << 20, CpuShares: 256, CpuQuota: 50000, CpuPeriod: 100000},
	}); err != nil {
		r.t.Fatalf("UpdateContainerResources: %v", err)
	}
	limits("after update")
	if got := cgroupFile(r.t, dir, "memory.max"); got != "134217728" {
		r.t.Errorf("memory.max %s after UpdateContainerResources, want 134217728", got)
	}
}
