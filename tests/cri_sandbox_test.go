//go:build integration && linux

package tests

// The pause-less table: pods through the handler custom-sandboxed (sandboxer = "shim":
// containerd's CRI plugin calls the shim's Sandbox API; no pause container, and on 2.4 no pause
// image), on containerd 2.4 and 2.3. Each row also runs on the pause path of the reference
// (handler runc), and both must observe the same: the pause-less pod must behave like a pod.

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/custom-shim/containerd-shim-custom-v1/tests/harness"
)

var sandboxScenarios = []criScenario{
	{"pod-lifecycle", criPodLifecycle},
	{"pod-network", criPodNetwork},
	{"share-pid", criSharePID},
	{"ipc-shm", criIPCShm},
	{"uts-hostname", criUTSHostname},
	{"sysctls", criSysctls},
	{"dns", criDNS},
	{"hostpath", criHostPath},
	{"hostpath-socket", criHostPathSocket},
	{"exec-sync", criExecSync},
	{"logs", criLogs},
	{"stream-exec", criStreamExec},
	{"stream-attach", criStreamAttach},
	{"oom-killed", criOOMKilled},
	{"pod-stats", criPodStats},
	{"concurrent-pods", criConcurrentPods},
	{"containerd-restart", criContainerdRestart},
	{"shim-sigkill", criShimKilled},
	{"checkpoint", criCheckpoint},
	{"userns", criUserns},
	{"mount-transforms", criMountTransforms},
	{"pid1-default-caps", pid1Scenario()},
	{"pid1-sys-ptrace", pid1Scenario("SYS_PTRACE")},
	{"pid1-sys-admin", pid1Scenario("SYS_ADMIN")},
}

// sandboxCompare holds the rows whose differential is not an equality of notes: the pause-less
// pod must do no worse than the pause path (cri_pid1_test.go).
var sandboxCompare = map[string]func(t *testing.T, ref, ours []string){
	"pid1-default-caps": pid1Compare,
	"pid1-sys-ptrace":   pid1Compare,
	"pid1-sys-admin":    pid1Compare,
}

// TestCRISandboxed runs the pause-less table: ours (custom-sandboxed) first, on 2.4 with the pause
// image removed from the CRI image store, then the reference's pause path (runc), with the pause
// image back; then the differential.
func TestCRISandboxed(t *testing.T) {
	paths := harness.DefaultPaths(t)
	specs, err := harness.SandboxCRIDaemons(paths)
	if err != nil {
		t.Fatal(err)
	}
	for _, spec := range specs {
		t.Run(spec.Name, func(t *testing.T) {
			harness.Require(t, harness.Executable(spec.Containerd),
				"%s is missing (run `make compat-deps COMPAT_VERSIONS=%s`)", spec.Containerd, spec.Line)
			harness.Require(t, harness.Executable(paths.Shim), "%s is not built (run `make build`)", paths.Shim)
			c := harness.StartCRI(t, spec.DaemonSpec, paths)
			for _, sc := range sandboxScenarios {
				t.Run(sc.name, func(t *testing.T) {
					notes := map[string][]string{}
					t.Run(harness.HandlerCustomSandboxed, func(t *testing.T) {
						if spec.SkipsPauseImage {
							c.RemovePauseImage(t)
						}
						r := newCRIRow(t, c, harness.HandlerCustomSandboxed)
						r.pauseless, r.noPauseImage = true, spec.SkipsPauseImage
						n := sc.run(r)
						t.Logf("observed: %q", n)
						notes[harness.HandlerCustomSandboxed] = n
					})
					t.Run(harness.HandlerRunc, func(t *testing.T) {
						c.ImportPauseImage(t)
						n := sc.run(newCRIRow(t, c, harness.HandlerRunc))
						t.Logf("observed: %q", n)
						notes[harness.HandlerRunc] = n
					})
					t.Run("differential", func(t *testing.T) {
						ref, ok1 := notes[harness.HandlerRunc]
						ours, ok2 := notes[harness.HandlerCustomSandboxed]
						if !ok1 || !ok2 {
							t.Fatalf("a runtime row did not finish: nothing to compare (reference %v, ours %v)", ok1, ok2)
						}
						if cmp := sandboxCompare[sc.name]; cmp != nil {
							cmp(t, ref, ours)
						} else if !reflect.DeepEqual(ref, ours) {
							t.Errorf("the pause-less pod differs from the pause path:\n  pause path: %q\n  pause-less: %q", ref, ours)
						}
					})
				})
			}
		})
	}
}

// expectPauseless checks a pod of a pause-less row: no pause container (containerd has no
// container with the pod's id: the pause path makes one), the pod's pid is the shim's holder (a
// child of the shim, not /pause), and, where the line skips it, no pause image.
func (r *criRow) expectPauseless(pod string) {
	r.t.Helper()
	if !r.pauseless {
		return
	}
	if ids := strings.Fields(r.CtrNS(r.t, harness.CRINamespace, "containers", "ls", "-q").Stdout); slices.Contains(ids, pod) {
		r.t.Fatalf("pause-less pod %s has a container of its own (a pause container): %v", pod, ids)
	}
	pid := r.podPid(pod)
	exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if strings.Contains(exe, "pause") || !strings.Contains(exe, "memfd:") {
		r.t.Fatalf("pod %s's process %d runs %q, want the shim's holder", pod, pid, exe)
	}
	r.shimOf(pid) // a child of this row's shim
	if r.noPauseImage && r.HasImage(r.t, harness.ImagePause.Ref) {
		r.t.Fatalf("the pause image %s is in the CRI image store after a pause-less pod ran", harness.ImagePause.Ref)
	}
}

// expectNothingLeft checks, after a pause-less row, that no holder process is left and, where the
// line skips it, that the pause image never came back (newCRIRow's cleanup checks the shims,
// mounts, sockets and cgroups).
func (r *criRow) expectNothingLeft() {
	r.t.Helper()
	r.waitFor("the row's pod holders to exit", func() bool {
		return len(harness.HoldersOf(r.pods)) == 0
	})
	if r.noPauseImage && r.HasImage(r.t, harness.ImagePause.Ref) {
		r.t.Errorf("the pause image %s is in the CRI image store after pause-less pods ran", harness.ImagePause.Ref)
	}
}

// podWith runs a pod whose config mod changes (from the row's host-network config).
func (r *criRow) podWith(name string, mod func(*runtimeapi.PodSandboxConfig)) (string, *runtimeapi.PodSandboxConfig) {
	r.t.Helper()
	cfg := r.podConfig(name)
	mod(cfg)
	return r.runPodConfig(cfg)
}

func nsOpts(cfg *runtimeapi.PodSandboxConfig) *runtimeapi.NamespaceOption {
	return cfg.Linux.SecurityContext.NamespaceOptions
}

// shareProcessNamespace: the containers of a pod see each other's processes (and a PID 1 that is
// neither of theirs); a StopContainer ends only its own container's processes.
func criSharePID(r *criRow) []string {
	pod, cfg := r.podWith("pidns", func(c *runtimeapi.PodSandboxConfig) { nsOpts(c).Pid = runtimeapi.NamespaceMode_POD })
	a := r.run(pod, cfg, containerConfig("a", "sleep", "1001"))
	b := r.run(pod, cfg, containerConfig("b", "sleep", "1002"))
	ps := string(r.mustExecSync(b, 0, "ps", "-o", "pid,args").Stdout)
	r.note("b sees a's sleep: %v; a PID 1 besides both: %v", strings.Contains(ps, "sleep 1001"),
		pid1Other(ps, "sleep 1001", "sleep 1002"))
	r.note("the task pids of a: %d", len(strings.Fields(r.CtrNS(r.t, harness.CRINamespace, "tasks", "ps", a).Stdout))/2-1)
	r.stop(a, 0)
	r.exitNote("a", a)
	ps = string(r.mustExecSync(b, 0, "ps", "-o", "pid,args").Stdout)
	r.note("after a stopped: b sees a's sleep: %v, b runs: %v", strings.Contains(ps, "sleep 1001"),
		r.status(b).GetStatus().GetState() == runtimeapi.ContainerState_CONTAINER_RUNNING)
	r.removePod(pod)
	return r.notes
}

// pid1Other reports whether ps output lists a PID 1 that runs none of own.
func pid1Other(ps string, own ...string) bool {
	for _, line := range strings.Split(ps, "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "1" {
			args := strings.Join(f[1:], " ")
			return !slices.Contains(own, args)
		}
	}
	return false
}

// The containers of a pod share its IPC namespace and /dev/shm (a tmpfs of the pod's); another
// pod's do not.
func criIPCShm(r *criRow) []string {
	pod, cfg := r.runPod("ipc")
	a := r.run(pod, cfg, containerConfig("a", sleeper...))
	b := r.run(pod, cfg, containerConfig("b", sleeper...))
	other, ocfg := r.runPod("ipc2")
	c := r.run(other, ocfg, containerConfig("c", sleeper...))
	r.mustExecSync(a, 0, "sh", "-c", "echo shared > /dev/shm/marker")
	seen := func(id string) bool {
		out, err := r.execSync(id, 10, "cat", "/dev/shm/marker")
		return err == nil && out.ExitCode == 0 && string(out.Stdout) == "shared\n"
	}
	ipcNS := func(id string) string {
		return strings.TrimSpace(string(r.mustExecSync(id, 0, "readlink", "/proc/self/ns/ipc").Stdout))
	}
	shmType := strings.Fields(string(r.mustExecSync(b, 0, "sh", "-c", "grep ' /dev/shm ' /proc/mounts").Stdout))
	r.note("b sees a's /dev/shm file: %v, same IPC namespace: %v; another pod's container sees it: %v, same IPC namespace: %v",
		seen(b), ipcNS(a) == ipcNS(b), seen(c), ipcNS(a) == ipcNS(c))
	if len(shmType) >= 3 {
		r.note("/dev/shm is %s", shmType[2])
	}
	r.removePod(pod)
	r.removePod(other)
	return r.notes
}

// A pod with a network of its own has a UTS namespace of its own: its hostname is the pod's, in
// `hostname` and in /etc/hostname.
func criUTSHostname(r *criRow) []string {
	pod, cfg := r.podWith("uts", func(c *runtimeapi.PodSandboxConfig) {
		nsOpts(c).Network = runtimeapi.NamespaceMode_POD
		c.Hostname = "cst-uts-host"
	})
	c := r.run(pod, cfg, containerConfig("c", sleeper...))
	r.note("hostname %q, /etc/hostname %q", r.mustExecSync(c, 0, "hostname").Stdout, r.mustExecSync(c, 0, "cat", "/etc/hostname").Stdout)
	r.removePod(pod)
	return r.notes
}

// Pod sysctls apply in the pod's namespaces (net.* in its network namespace, kernel.shm* in its
// IPC namespace), not on the host.
func criSysctls(r *criRow) []string {
	hostShm, _ := os.ReadFile("/proc/sys/kernel/shmmni")
	pod, cfg := r.podWith("sysctl", func(c *runtimeapi.PodSandboxConfig) {
		nsOpts(c).Network = runtimeapi.NamespaceMode_POD
		c.Linux.Sysctls = map[string]string{"net.ipv4.ip_local_port_range": "40000 40100", "kernel.shmmni": "2048"}
	})
	c := r.run(pod, cfg, containerConfig("c", sleeper...))
	read := func(path string) string {
		return strings.Join(strings.Fields(string(r.mustExecSync(c, 0, "cat", path).Stdout)), " ")
	}
	r.note("inside: ip_local_port_range %q, shmmni %q, ip_unprivileged_port_start %q",
		read("/proc/sys/net/ipv4/ip_local_port_range"), read("/proc/sys/kernel/shmmni"), read("/proc/sys/net/ipv4/ip_unprivileged_port_start"))
	now, _ := os.ReadFile("/proc/sys/kernel/shmmni")
	r.note("host's shmmni unchanged: %v", string(now) == string(hostShm))
	r.removePod(pod)
	return r.notes
}

// The pod's DNS config is the containers' /etc/resolv.conf.
func criDNS(r *criRow) []string {
	pod, cfg := r.podWith("dns", func(c *runtimeapi.PodSandboxConfig) {
		c.DnsConfig = &runtimeapi.DNSConfig{Servers: []string{"10.96.0.10"}, Searches: []string{"cst.svc.cluster.local", "cluster.local"}, Options: []string{"ndots:5"}}
	})
	c := r.run(pod, cfg, containerConfig("c", sleeper...))
	r.note("resolv.conf %q", r.mustExecSync(c, 0, "cat", "/etc/resolv.conf").Stdout)
	r.removePod(pod)
	return r.notes
}

// A hostPath volume is live in both directions.
func criHostPath(r *criRow) []string {
	dir := r.t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "from-host"), []byte("host\n"), 0o644); err != nil {
		r.t.Fatal(err)
	}
	pod, cfg := r.runPod("vol")
	cc := containerConfig("c", sleeper...)
	cc.Mounts = []*runtimeapi.Mount{{ContainerPath: "/data", HostPath: dir}}
	c := r.run(pod, cfg, cc)
	got := r.mustExecSync(c, 0, "cat", "/data/from-host").Stdout
	r.mustExecSync(c, 0, "sh", "-c", "echo container > /data/from-container")
	back, err := os.ReadFile(filepath.Join(dir, "from-container"))
	r.note("container reads %q, host reads %q (%v)", got, back, err)
	r.removePod(pod)
	return r.notes
}

// A hostPath volume that is a host UNIX socket (a container reaching a host service): the
// container sees the socket.
func criHostPathSocket(r *criRow) []string {
	sock := filepath.Join(r.t.TempDir(), "host.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		r.t.Fatal(err)
	}
	defer l.Close()
	pod, cfg := r.runPod("sockvol")
	cc := containerConfig("c", sleeper...)
	cc.Mounts = []*runtimeapi.Mount{{ContainerPath: "/run/host.sock", HostPath: sock}}
	c := r.run(pod, cfg, cc)
	out, err := r.execSync(c, 10, "sh", "-c", "test -S /run/host.sock && echo socket")
	r.note("container sees the host socket: %q (%v)", out.GetStdout(), codeOf(err))
	r.removePod(pod)
	return r.notes
}

// PodSandboxStats (the Sandbox API's SandboxMetrics in shim mode) reports the pod's cgroup.
func criPodStats(r *criRow) []string {
	pod, cfg := r.runPod("stats")
	r.run(pod, cfg, containerConfig("c", "sh", "-c", "i=0; while [ $i -lt 50000 ]; do i=$((i+1)); done; sleep 1000"))
	ctx, cancel := r.ctx()
	defer cancel()
	var st *runtimeapi.PodSandboxStats
	r.waitFor("pod stats with CPU and memory usage", func() bool {
		resp, err := r.Runtime.PodSandboxStats(ctx, &runtimeapi.PodSandboxStatsRequest{PodSandboxId: pod})
		if err != nil {
			r.t.Fatalf("PodSandboxStats: %v", err)
		}
		st = resp.GetStats()
		return st.GetLinux().GetCpu().GetUsageCoreNanoSeconds().GetValue() > 0 &&
			st.GetLinux().GetMemory().GetWorkingSetBytes().GetValue() > 0
	})
	r.note("pod stats: id %v, cpu>0 %v, memory>0 %v", st.GetAttributes().GetId() == pod,
		st.GetLinux().GetCpu().GetUsageCoreNanoSeconds().GetValue() > 0, st.GetLinux().GetMemory().GetWorkingSetBytes().GetValue() > 0)
	r.removePod(pod)
	return r.notes
}

// containerd restarts (SIGKILL, start again) with a pod running: the pod is listed ready, its
// container still runs and takes an exec, and it stops and is removed cleanly.
func criContainerdRestart(r *criRow) []string {
	pod, cfg := r.runPod("restart")
	c := r.run(pod, cfg, containerConfig("c", sleeper...))
	pid := r.containerPid(c)
	r.Crash(r.t)
	r.Restart(r.t)
	var st *runtimeapi.PodSandboxStatusResponse
	r.waitFor("the CRI plugin to serve again", func() bool {
		ctx, cancel := r.ctx()
		defer cancel()
		var err error
		st, err = r.Runtime.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: pod})
		return err == nil
	})
	r.note("after restart: pod %s, container %s, same pid %v", st.GetStatus().GetState(),
		r.status(c).GetStatus().GetState(), r.containerPid(c) == pid)
	r.note("exec: %q", r.mustExecSync(c, 0, "echo", "served").Stdout)
	r.removePod(pod)
	return r.notes
}

// The pod's shim is SIGKILLed with a container running: the pod can still be stopped and removed,
// and nothing of it is left (containerd runs the shim's delete for the dead shim's bundles).
//
// Not on containerd 2.3: it runs no delete for the containers it connected straight to a
// sandbox's shim (a version 3 shim), so their runc state and cgroups outlive a dead shim, on the
// pause path as well (the pod's removal still succeeds); 2.4 runs it.
func criShimKilled(r *criRow) []string {
	if strings.HasPrefix(r.Spec.Name, "containerd-2.3") {
		r.note("not on containerd 2.3 (no delete for containers joined to a sandbox's shim)")
		return r.notes
	}
	snap := harness.SnapshotSockets()
	pod, cfg := r.runPod("killed")
	c := r.run(pod, cfg, containerConfig("c", sleeper...))
	shim := r.shimOf(r.containerPid(c))
	if err := syscall.Kill(shim.Pid, syscall.SIGKILL); err != nil {
		r.t.Fatal(err)
	}
	r.waitProcessGone(shim)
	st := r.waitState(c, runtimeapi.ContainerState_CONTAINER_EXITED)
	r.note("container after its shim was killed: %s", st.GetState())
	r.removeKilledPod(pod)
	ctx, cancel := r.ctx()
	defer cancel()
	pods, err := r.Runtime.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		r.t.Fatal(err)
	}
	r.note("pods left: %d", len(pods.Items))
	if r.prefix == harness.HandlerRunc {
		// containerd-shim-runc-v2 2.4.2 leaves the socket of a SIGKILLed grouped shim behind
		// (referenceBugs "shim-sigkill/socket"): not the row's finding.
		for _, sock := range harness.StaleSocketsSince(snap) {
			r.t.Logf("known reference bug, removed: %s (%s)", sock, referenceBugs["containerd-2.4/shim-sigkill/socket"])
			_ = os.Remove(sock)
		}
	}
	return r.notes
}

// usernsHostID is the first host id of the user-namespaced pods' 65536 ids (as the kubelet
// gives each pod with hostUsers: false a range of its own).
const usernsHostID = 2_000_000

// hostUsers: false (a user namespace of the pod's own, CRI mode POD, 65536 ids) with a pod
// network: a member runs as the pod's root mapped to the host's usernsHostID, sees the mapping,
// writes /dev/shm, execs; its process is the host's usernsHostID; a second member shares the
// user namespace and /dev/shm.
func criUserns(r *criRow) []string {
	userns := &runtimeapi.UserNamespace{
		Mode: runtimeapi.NamespaceMode_POD,
		Uids: []*runtimeapi.IDMapping{{HostId: usernsHostID, ContainerId: 0, Length: 65536}},
		Gids: []*runtimeapi.IDMapping{{HostId: usernsHostID, ContainerId: 0, Length: 65536}},
	}
	pod, cfg := r.podWith("userns", func(c *runtimeapi.PodSandboxConfig) {
		nsOpts(c).Network = runtimeapi.NamespaceMode_POD
		nsOpts(c).UsernsOptions = userns
	})
	member := func(name string) string {
		cc := containerConfig(name, sleeper...)
		cc.Linux.SecurityContext = &runtimeapi.LinuxContainerSecurityContext{NamespaceOptions: &runtimeapi.NamespaceOption{
			Network: runtimeapi.NamespaceMode_POD, Pid: runtimeapi.NamespaceMode_CONTAINER, Ipc: runtimeapi.NamespaceMode_POD,
			UsernsOptions: userns,
		}}
		return r.run(pod, cfg, cc)
	}
	a, b := member("a"), member("b")
	out := func(id string, cmd ...string) string {
		return strings.TrimSpace(string(r.mustExecSync(id, 0, cmd...).Stdout))
	}
	r.note("id inside: %s; uid_map: %q", out(a, "id", "-u"), strings.Join(strings.Fields(out(a, "cat", "/proc/self/uid_map")), " "))
	r.mustExecSync(a, 0, "sh", "-c", "echo shared > /dev/shm/from-a")
	r.note("b reads a's /dev/shm file: %q, owned by %q", out(b, "cat", "/dev/shm/from-a"),
		strings.Fields(out(b, "ls", "-ln", "/dev/shm/from-a"))[2])
	r.note("a and b share the user namespace: %v", out(a, "readlink", "/proc/self/ns/user") == out(b, "readlink", "/proc/self/ns/user"))
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", r.containerPid(a)))
	if err != nil {
		r.t.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "Uid:"); ok {
			r.note("the host sees a's process as uid %s", strings.Fields(v)[0])
		}
	}
	r.note("hostname: %s; resolv.conf readable: %v", out(a, "hostname"), r.mustExecSync(a, 0, "cat", "/etc/resolv.conf") != nil)
	r.removePod(pod)
	return r.notes
}
