//go:build integration && linux

package tests

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/custom-shim/containerd-shim-custom-v1/tests/harness"
)

// criScenarios is the CRI table: each row runs through containerd's CRI plugin (the path of
// the kubelet) on the reference handler and on ours, against containerd 2.4 and 1.6.
var criScenarios = []criScenario{
	{"pod-lifecycle", criPodLifecycle},
	{"pod-network", criPodNetwork},
	{"exec-sync", criExecSync},
	{"exec-sync-held-io", criExecSyncHeldIO},
	{"logs", criLogs},
	{"resources-stats", criResourcesStats},
	{"ten-containers", criTenContainers},
	{"concurrent-pods", criConcurrentPods},
	{"options-binary-name", criBinaryName},
	{"options-systemd-cgroup", criSystemdCgroup},
	{"stream-exec", criStreamExec},
	{"stream-attach", criStreamAttach},
	{"hostpath-socket", criHostPathSocket},
}

// TestCRI runs the CRI table. CST_CRI_PODS sets the number of pods of concurrent-pods (default
// 20, the figure; fewer for a quick local run).
func TestCRI(t *testing.T) { runCRITable(t, criScenarios) }

// Two pods on the daemon's CNI bridge network (Debian's bridge and host-local plugins): each
// gets an address of the bridge's subnet, its containers see it on eth0, one pod reaches the
// other, and each pod is still served by one shim of its own.
func criPodNetwork(r *criRow) []string {
	type netPod struct {
		id, container string
		ip            net.IP
		shim          harness.Proc
	}
	pods := make([]netPod, 2)
	for i := range pods {
		pod, cfg := r.runNetworkPod(fmt.Sprintf("net%d", i))
		p := &pods[i]
		p.id = pod
		p.container = r.run(pod, cfg, containerConfig("app", sleeper...))
		ctx, cancel := r.ctx()
		st, err := r.Runtime.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: pod})
		cancel()
		if err != nil {
			r.t.Fatalf("PodSandboxStatus %s: %v", pod, err)
		}
		if mode := st.GetStatus().GetLinux().GetNamespaces().GetOptions().GetNetwork(); mode != runtimeapi.NamespaceMode_POD {
			r.t.Fatalf("pod %s has network namespace mode %s, want POD", pod, mode)
		}
		p.ip = net.ParseIP(st.GetStatus().GetNetwork().GetIp())
		if p.ip == nil || !r.Network.Subnet.Contains(p.ip) {
			r.t.Fatalf("pod %s has IP %q, want one in the bridge subnet %s", pod, st.GetStatus().GetNetwork().GetIp(), r.Network.Subnet)
		}
		p.shim = r.shimOf(r.podPid(pod))
		if s := r.shimOf(r.containerPid(p.container)); s.Pid != p.shim.Pid {
			r.t.Fatalf("container %s is served by shim %s, its pod by %s", p.container, s, p.shim)
		}
		out := r.mustExecSync(p.container, 0, "ip", "-4", "-o", "addr", "show", "dev", "eth0")
		if !strings.Contains(string(out.Stdout), " "+p.ip.String()+"/") {
			r.t.Fatalf("eth0 of container %s does not carry the pod IP %s: %q", p.container, p.ip, out.Stdout)
		}
	}
	if pods[0].ip.Equal(pods[1].ip) || pods[0].shim.Pid == pods[1].shim.Pid {
		r.t.Fatalf("two pods share IP %s or shim %d/%d", pods[0].ip, pods[0].shim.Pid, pods[1].shim.Pid)
	}
	r.note("2 pods on the bridge: distinct IPs of the subnet on eth0, one shim each")
	out := r.mustExecSync(pods[1].container, 0, "ping", "-c", "1", "-W", "5", pods[0].ip.String())
	r.note("ping from pod 1 to pod 0: exit %d", out.ExitCode)
	// A server in pod 0 answers a client in pod 1 over TCP.
	r.mustExecSync(pods[0].container, 0, "sh", "-c", "nc -l -p 8080 -e echo served >/dev/null 2>&1 &")
	var reply string
	r.waitFor("a TCP reply from pod 0", func() bool {
		resp, err := r.execSync(pods[1].container, 10, "nc", "-w", "2", pods[0].ip.String(), "8080")
		reply = strings.TrimSpace(string(resp.GetStdout()))
		return err == nil && reply == "served"
	})
	r.note("TCP from pod 1 to pod 0: %q", reply)
	for _, p := range pods {
		r.removePod(p.id)
		r.waitProcessGone(p.shim)
	}
	return r.notes
}

var (
	sleeper = []string{"sleep", "1000"}
	// trapper exits 0 on SIGTERM (a plain pid 1 ignores it).
	trapper = []string{"sh", "-c", `trap "exit 0" TERM; sleep 1000 & wait`}
)

// A pod with three containers: all served by the pause container's shim; stopping and removing
// two leaves the third running and served; the shim exits once the pod is removed.
func criPodLifecycle(r *criRow) []string {
	pod, podCfg := r.runPod("life")
	shim := r.shimOf(r.podPid(pod))
	a := r.run(pod, podCfg, containerConfig("a", trapper...))
	b := r.run(pod, podCfg, containerConfig("b", sleeper...))
	c := r.run(pod, podCfg, containerConfig("c", sleeper...))
	for _, id := range []string{a, b, c} {
		if s := r.shimOf(r.containerPid(id)); s.Pid != shim.Pid {
			r.t.Fatalf("container %s is served by shim %s, the pod by %s: want one shim per pod", id, s, shim)
		}
	}
	if shims := r.shimsOfDaemon(); len(shims) != 1 {
		r.t.Fatalf("want one shim for the pod, have %v", shims)
	}
	r.note("one shim for the pause and 3 containers")

	listed := r.listContainers(pod)
	var states []string
	for _, c := range listed {
		states = append(states, c.Metadata.Name+"="+c.State.String())
	}
	slices.Sort(states)
	r.note("listed: %v", states)

	r.stop(a, 10) // SIGTERM, trapped: exit 0
	r.exitNote("a", a)
	r.stop(b, 0) // SIGKILL at once
	r.exitNote("b", b)
	r.remove(a)
	r.remove(b)
	ctx, cancel := r.ctx()
	_, err := r.Runtime.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: a})
	cancel()
	r.note("status of removed container: %s", codeOf(err))
	if n := len(r.listContainers(pod)); n != 1 {
		r.t.Fatalf("after removing 2 of 3 containers ListContainers has %d", n)
	}
	if syscall.Kill(shim.Pid, 0) != nil {
		r.t.Fatalf("shim %s exited while container %s still runs", shim, c)
	}
	if st := r.status(c).GetStatus(); st.GetState() != runtimeapi.ContainerState_CONTAINER_RUNNING {
		r.t.Fatalf("container c is %s after its siblings were removed", st.GetState())
	}
	out := r.mustExecSync(c, 0, "echo", "still served")
	r.note("exec in c: %q", out.Stdout)
	if s := r.shimOf(r.containerPid(c)); s.Pid != shim.Pid {
		r.t.Fatalf("container c moved to shim %s", s)
	}

	ctx, cancel = r.ctx()
	defer cancel()
	if _, err := r.Runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: pod}); err != nil {
		r.t.Fatalf("StopPodSandbox: %v", err)
	}
	r.exitNote("c after StopPodSandbox", c)
	pst, err := r.Runtime.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: pod})
	if err != nil {
		r.t.Fatalf("PodSandboxStatus: %v", err)
	}
	r.note("pod after stop: %s", pst.Status.State)
	if _, err := r.Runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: pod}); err != nil {
		r.t.Fatalf("RemovePodSandbox: %v", err)
	}
	r.waitProcessGone(shim)
	pods, err := r.Runtime.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		r.t.Fatalf("ListPodSandbox: %v", err)
	}
	r.note("pods left: %d", len(pods.Items))
	return r.notes
}

// ExecSync: exit code, stdout and stderr; a timeout; the container keeps serving.
func criExecSync(r *criRow) []string {
	pod, podCfg := r.runPod("exec")
	c := r.run(pod, podCfg, containerConfig("c", sleeper...))

	out := r.mustExecSync(c, 3, "sh", "-c", "echo out; echo err >&2; exit 3")
	r.note("exec: stdout=%q stderr=%q", out.Stdout, out.Stderr)

	big := r.mustExecSync(c, 0, "sh", "-c", "seq 1 20000")
	if lines := strings.Count(string(big.Stdout), "\n"); lines != 20000 {
		r.t.Errorf("ExecSync seq 1 20000: %d lines of stdout, want 20000", lines)
	}
	r.note("exec seq: %d bytes", len(big.Stdout))

	resp, err := r.execSync(c, 1, "sleep", "30")
	r.note("exec timeout: code=%s exit=%d", codeOf(err), resp.GetExitCode())
	if err == nil {
		r.t.Errorf("ExecSync sleep 30 with a 1 s timeout returned %+v, want an error", resp)
	}
	// The timed-out exec is killed; the container serves the next one.
	r.waitFor("the timed-out exec is killed", func() bool {
		ps := r.mustExecSync(c, 0, "ps", "-o", "args")
		return !strings.Contains(string(ps.Stdout), "sleep 30")
	})
	r.mustExecSync(c, 0, "true")
	_, err = r.execSync(c, 10, "/no/such/binary")
	r.note("exec of a missing binary: code=%s", codeOf(err))
	st := r.status(c).GetStatus()
	r.note("container after execs: %s", st.GetState())
	r.removePod(pod)
	return r.notes
}

// ExecSync of a command that leaves a background process holding its output (an exec probe of
// `sh -c "sleep 365d &"`): the exec exits at once, but its output stays open. After
// drain_exec_sync_io_timeout (10 s, containerd 2.x only) CRI deletes the exec to release the
// output, and that Delete must come back: CRI then answers "failed to drain exec process" at
// once, and the container serves the next ExecSync.
func criExecSyncHeldIO(r *criRow) []string {
	if r.Spec.ConfigVersion < 3 {
		r.note("no drain_exec_sync_io_timeout in containerd 1.x: not applicable")
		return r.notes
	}
	pod, podCfg := r.runPod("held")
	c := r.run(pod, podCfg, containerConfig("c", sleeper...))
	start := time.Now()
	_, err := r.execSync(c, 5, "sh", "-c", "sleep 365d &")
	took := time.Since(start)
	r.t.Logf("ExecSync with held output: %v after %s", err, took.Round(time.Millisecond))
	// 10 s of drain timeout, then the Delete; 25 s leaves room for a loaded machine.
	if took > 25*time.Second {
		r.t.Errorf("ExecSync with held output came back after %s, want about 10 s (drain timeout) and a prompt Delete", took.Round(time.Second))
	}
	r.note("held output: code=%s drain error=%v", codeOf(err), err != nil && strings.Contains(err.Error(), "failed to drain exec process"))
	start = time.Now()
	out, err := r.execSync(c, 10, "sh", "-c", "echo next; sleep 2s &")
	if err != nil {
		r.t.Fatalf("ExecSync after the held one: %v", err)
	}
	r.note("next exec: exit=%d stdout=%q within 10 s=%v", out.ExitCode, out.Stdout, time.Since(start) < 10*time.Second)
	r.removePod(pod)
	return r.notes
}

// Container logs in the CRI format at the CRI log path; ReopenContainerLog.
func criLogs(r *criRow) []string {
	pod, podCfg := r.runPod("logs")
	once := r.create(pod, podCfg, containerConfig("once", "sh", "-c", "echo hello; echo oops >&2; printf partial"))
	r.start(once)
	r.exitNote("once", once)
	logPath := r.status(once).GetStatus().GetLogPath()
	if want := filepath.Join(podCfg.LogDirectory, "once.log"); logPath != want {
		r.t.Errorf("log path %q, want %q", logPath, want)
	}
	var lines []string
	for _, l := range readCRILog(r.t, logPath) {
		lines = append(lines, l.Stream+" "+l.Tag+" "+l.Text)
	}
	slices.Sort(lines) // stdout and stderr are copied independently
	r.note("log: %q", lines)

	loop := r.run(pod, podCfg, containerConfig("loop", "sh", "-c", `i=0; while :; do i=$((i+1)); echo line $i; sleep 0.1; done`))
	path := r.status(loop).GetStatus().GetLogPath()
	r.waitFor("first log lines", func() bool { st, err := os.Stat(path); return err == nil && st.Size() > 0 })
	if err := os.Rename(path, path+".1"); err != nil {
		r.t.Fatal(err)
	}
	ctx, cancel := r.ctx()
	_, err := r.Runtime.ReopenContainerLog(ctx, &runtimeapi.ReopenContainerLogRequest{ContainerId: loop})
	cancel()
	if err != nil {
		r.t.Fatalf("ReopenContainerLog: %v", err)
	}
	r.waitFor("lines in the reopened log", func() bool {
		raw, err := os.ReadFile(path)
		return err == nil && strings.Contains(string(raw), " stdout F line ")
	})
	r.note("reopened log gets new lines")
	r.stop(loop, 0)
	r.exitNote("loop", loop)
	ctx, cancel = r.ctx()
	_, err = r.Runtime.ReopenContainerLog(ctx, &runtimeapi.ReopenContainerLogRequest{ContainerId: loop})
	cancel()
	r.note("reopen of a stopped container: %s", codeOf(err))
	r.removePod(pod)
	return r.notes
}

// UpdateContainerResources reaches the container's cgroup; ContainerStats and
// ListContainerStats report it.
func criResourcesStats(r *criRow) []string {
	pod, podCfg := r.runPod("res")
	cfg := containerConfig("c", sleeper...)
	cfg.Linux.Resources = &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 64 << 20, CpuShares: 512}
	c := r.run(pod, podCfg, cfg)
	pid := r.containerPid(c)
	r.note("memory limit at start: %s, cpu.shares %s", cgroupValue(r.t, pid, "memory", "memory.limit_in_bytes"),
		cgroupValue(r.t, pid, "cpu", "cpu.shares"))

	ctx, cancel := r.ctx()
	defer cancel()
	_, err := r.Runtime.UpdateContainerResources(ctx, &runtimeapi.UpdateContainerResourcesRequest{
		ContainerId: c,
		Linux:       &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 128 << 20, CpuShares: 256},
	})
	if err != nil {
		r.t.Fatalf("UpdateContainerResources: %v", err)
	}
	r.note("memory limit after update: %s, cpu.shares %s", cgroupValue(r.t, pid, "memory", "memory.limit_in_bytes"),
		cgroupValue(r.t, pid, "cpu", "cpu.shares"))
	if res := r.status(c).GetStatus().GetResources().GetLinux(); res != nil {
		r.note("status resources: memory %d, shares %d", res.MemoryLimitInBytes, res.CpuShares)
	}

	r.mustExecSync(c, 0, "sh", "-c", "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done") // some CPU time
	st, err := r.Runtime.ContainerStats(ctx, &runtimeapi.ContainerStatsRequest{ContainerId: c})
	if err != nil {
		r.t.Fatalf("ContainerStats: %v", err)
	}
	s := st.GetStats()
	if s.GetAttributes().GetId() != c {
		r.t.Errorf("ContainerStats attributes id %q, want %q", s.GetAttributes().GetId(), c)
	}
	if s.GetCpu().GetUsageCoreNanoSeconds().GetValue() == 0 || s.GetMemory().GetWorkingSetBytes().GetValue() == 0 {
		r.t.Errorf("ContainerStats without CPU or memory usage: %v", s)
	}
	r.note("stats: cpu>0 %v, working set>0 %v", s.GetCpu().GetUsageCoreNanoSeconds().GetValue() > 0,
		s.GetMemory().GetWorkingSetBytes().GetValue() > 0)

	list, err := r.Runtime.ListContainerStats(ctx, &runtimeapi.ListContainerStatsRequest{
		Filter: &runtimeapi.ContainerStatsFilter{PodSandboxId: pod},
	})
	if err != nil {
		r.t.Fatalf("ListContainerStats: %v", err)
	}
	var ids []string
	for _, s := range list.Stats {
		ids = append(ids, s.GetAttributes().GetId())
		if s.GetMemory().GetWorkingSetBytes().GetValue() == 0 {
			r.t.Errorf("ListContainerStats: no memory usage for %s", s.GetAttributes().GetId())
		}
	}
	if len(ids) != 1 || ids[0] != c {
		r.t.Errorf("ListContainerStats of the pod: %v, want [%s]", ids, c)
	}
	r.note("listed stats: %d", len(ids))
	r.removePod(pod)
	return r.notes
}

// cgroupValue reads file of process pid's cgroup in the v1 controller hierarchy.
func cgroupValue(t *testing.T, pid int, controller, file string) string {
	t.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) == 3 && slices.Contains(strings.Split(f[1], ","), controller) {
			dir := filepath.Join("/sys/fs/cgroup", controller, f[2])
			v, err := os.ReadFile(filepath.Join(dir, file))
			if err != nil {
				t.Fatal(err)
			}
			return strings.TrimSpace(string(v))
		}
	}
	t.Fatalf("process %d has no %s cgroup: %s", pid, controller, raw)
	return ""
}

// A pod with 10 containers: one shim; StopPodSandbox ends all of them.
func criTenContainers(r *criRow) []string {
	pod, podCfg := r.runPod("ten")
	shim := r.shimOf(r.podPid(pod))
	var ids []string
	for i := range 10 {
		ids = append(ids, r.run(pod, podCfg, containerConfig("c"+strconv.Itoa(i), sleeper...)))
	}
	for _, id := range ids {
		if s := r.shimOf(r.containerPid(id)); s.Pid != shim.Pid {
			r.t.Fatalf("container %s is served by %s, the pod by %s", id, s, shim)
		}
	}
	running := 0
	for _, c := range r.listContainers(pod) {
		if c.State == runtimeapi.ContainerState_CONTAINER_RUNNING {
			running++
		}
	}
	r.note("running: %d, shims: %d", running, len(r.shimsOfDaemon()))
	ctx, cancel := r.ctx()
	defer cancel()
	if _, err := r.Runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: pod}); err != nil {
		r.t.Fatalf("StopPodSandbox: %v", err)
	}
	exits := map[string]int{}
	for _, id := range ids {
		st := r.waitState(id, runtimeapi.ContainerState_CONTAINER_EXITED)
		exits[fmt.Sprintf("%d/%s", st.ExitCode, st.Reason)]++
	}
	r.note("exits after StopPodSandbox: %v", exits)
	if _, err := r.Runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: pod}); err != nil {
		r.t.Fatalf("RemovePodSandbox: %v", err)
	}
	r.waitProcessGone(shim)
	return r.notes
}

// concurrentPods is the number of pods criConcurrentPods runs at once (CST_CRI_PODS).
func concurrentPods(t *testing.T) int {
	if v := os.Getenv("CST_CRI_PODS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("CST_CRI_PODS=%q: want a positive number", v)
		}
		return n
	}
	return 20
}

// Pods created, checked and torn down in parallel, two containers each: every container runs,
// each pod has its own shim, nothing is left.
func criConcurrentPods(r *criRow) []string {
	n := concurrentPods(r.t)
	type result struct {
		shims map[int]bool // shim pids of the pause and the containers
		err   error
	}
	results := make([]result, n)
	pods := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			results[i].shims = map[int]bool{}
			pods[i], results[i].err = r.concurrentPod(i, results[i].shims)
		})
	}
	wg.Wait()
	for _, pod := range pods {
		if pod != "" {
			r.pods = append(r.pods, pod)
		}
	}
	allShims := map[int]bool{}
	for i, res := range results {
		if res.err != nil {
			r.t.Errorf("pod %d: %v", i, res.err)
			continue
		}
		if len(res.shims) != 1 {
			r.t.Errorf("pod %d is served by shims %v, want one", i, res.shims)
		}
		for pid := range res.shims {
			if allShims[pid] {
				r.t.Errorf("shim %d serves two pods", pid)
			}
			allShims[pid] = true
		}
	}
	if r.t.Failed() {
		r.t.FailNow()
	}
	r.note("%d pods, 2 running containers each, %d shims", n, len(allShims))
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			ctx, cancel := r.ctx()
			defer cancel()
			if _, err := r.Runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: pods[i]}); err != nil {
				errs[i] = err
				return
			}
			_, errs[i] = r.Runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: pods[i]})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			r.t.Errorf("tear down pod %d: %v", i, err)
		}
	}
	for pid := range allShims {
		r.waitProcessGone(harness.Proc{Pid: pid, Cmdline: "shim"})
	}
	return r.notes
}

// concurrentPod runs pod i with two containers and records the shims serving them. It returns
// errors instead of failing (it runs on its own goroutine).
func (r *criRow) concurrentPod(i int, shims map[int]bool) (string, error) {
	ctx, cancel := r.ctx()
	defer cancel()
	cfg := r.podConfig("par" + strconv.Itoa(i))
	resp, err := r.Runtime.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: cfg, RuntimeHandler: r.handler("")})
	if err != nil {
		return "", fmt.Errorf("RunPodSandbox: %w", err)
	}
	pod := resp.PodSandboxId
	pst, err := r.Runtime.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: pod, Verbose: true})
	if err != nil {
		return pod, err
	}
	pids := []map[string]string{pst.Info}
	for _, name := range []string{"a", "b"} {
		c, err := r.Runtime.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: pod, Config: containerConfig(name, sleeper...), SandboxConfig: cfg})
		if err != nil {
			return pod, fmt.Errorf("CreateContainer %s: %w", name, err)
		}
		if _, err := r.Runtime.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: c.ContainerId}); err != nil {
			return pod, fmt.Errorf("StartContainer %s: %w", name, err)
		}
		st, err := r.Runtime.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: c.ContainerId, Verbose: true})
		if err != nil {
			return pod, err
		}
		if st.Status.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
			return pod, fmt.Errorf("container %s is %s after StartContainer", name, st.Status.State)
		}
		pids = append(pids, st.Info)
	}
	for _, info := range pids {
		pid, err := verbosePid(info)
		if err != nil {
			return pod, err
		}
		ppid, err := parentPid(pid)
		if err != nil {
			return pod, err
		}
		shims[ppid] = true
	}
	return pod, nil
}

// The handler's options table reaches the shim: BinaryName (a wrapper recording each call)
// runs every OCI runtime command of the pod.
func criBinaryName(r *criRow) []string {
	if err := os.WriteFile(r.WrapperLog, nil, 0o644); err != nil {
		r.t.Fatal(err)
	}
	cfg := r.podConfig("wrapped")
	ctx, cancel := r.ctx()
	defer cancel()
	resp, err := r.Runtime.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: cfg, RuntimeHandler: r.handler("-wrapped")})
	if err != nil {
		r.t.Fatalf("RunPodSandbox (handler %s): %v", r.handler("-wrapped"), err)
	}
	pod := resp.PodSandboxId
	c := r.run(pod, cfg, containerConfig("c", sleeper...))
	r.mustExecSync(c, 0, "true")
	r.removePod(pod)

	raw, err := os.ReadFile(r.WrapperLog)
	if err != nil {
		r.t.Fatal(err)
	}
	calls := strings.Split(strings.TrimSpace(string(raw)), "\n")
	for _, id := range []string{pod, c} {
		verbs := map[string]bool{}
		for _, call := range calls {
			f := strings.Fields(call)
			if len(f) == 0 || f[len(f)-1] != id {
				continue
			}
			for _, v := range []string{"create", "start", "exec", "kill", "delete"} {
				if slices.Contains(f, v) {
					verbs[v] = true
				}
			}
		}
		which := "pod"
		if id == c {
			which = "container"
		}
		r.note("%s: wrapper ran create=%v start=%v delete=%v", which, verbs["create"], verbs["start"], verbs["delete"])
		if !verbs["create"] || !verbs["start"] {
			r.t.Errorf("BinaryName wrapper did not run create and start of the %s %s; calls:\n%s", which, id, raw)
		}
	}
	return r.notes
}

// SystemdCgroup = true where systemd is not running (as here, in a container): the pod fails
// with an error naming the cause, promptly, and leaves nothing behind. With systemd running
// the pod must start (not tested here: no systemd on the CI machine).
func criSystemdCgroup(r *criRow) []string {
	systemd := false
	if st, err := os.Stat("/run/systemd/system"); err == nil && st.IsDir() {
		systemd = true
	}
	cfg := r.podConfig("systemd")
	// A .slice parent, as the kubelet's systemd cgroup driver gives: CRI then emits
	// slice:prefix:name cgroup paths, which only --systemd-cgroup understands.
	cfg.Linux.CgroupParent = "cstsd.slice"
	ctx, cancel := context.WithTimeout(context.Background(), harness.CRITimeout)
	defer cancel()
	resp, err := r.Runtime.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: cfg, RuntimeHandler: r.handler("-systemd")})
	r.t.Cleanup(func() {
		dirs, _ := filepath.Glob("/sys/fs/cgroup/*/cstsd.slice*")
		for _, d := range dirs {
			r.t.Errorf("cgroup %s left by the systemd pod", d)
			_ = syscall.Rmdir(d)
		}
	})
	if systemd {
		if err != nil {
			r.t.Fatalf("RunPodSandbox with SystemdCgroup under systemd: %v", err)
		}
		r.note("pod runs under systemd")
		r.removePod(resp.PodSandboxId)
		return r.notes
	}
	if ctx.Err() != nil {
		r.t.Fatalf("RunPodSandbox with SystemdCgroup = true and no systemd hung for %s: %v", harness.CRITimeout, err)
	}
	if err == nil {
		r.t.Fatalf("RunPodSandbox with SystemdCgroup = true and no systemd succeeded: the option did not reach runc")
	}
	r.t.Logf("error: %v", err)
	msg := strings.ToLower(err.Error())
	r.note("RunPodSandbox fails: %s, names systemd/dbus: %v", codeOf(err),
		strings.Contains(msg, "systemd") || strings.Contains(msg, "dbus"))
	return r.notes
}
