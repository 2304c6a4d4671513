//go:build integration && linux

package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/custom-shim/containerd-shim-custom-v1/tests/harness"
)

// criScenario is a CRI table row, run once per daemon and per handler pair (reference, ours).
type criScenario struct {
	name string
	run  func(*criRow) []string // returns notes, compared between the two handlers
}

// criRuntimes are the columns of the CRI table: the handler-name prefix of each runtime (the
// handlers are "<prefix>", "<prefix>-wrapped", "<prefix>-systemd"), the reference first.
var criRuntimes = []string{harness.HandlerRunc, harness.HandlerCustom}

// runCRITable runs every scenario against each CRI daemon, on the reference handler then ours,
// and compares their notes.
func runCRITable(t *testing.T, table []criScenario) {
	paths := harness.DefaultPaths(t)
	for _, spec := range harness.CRIDaemons(paths) {
		t.Run(spec.Name, func(t *testing.T) {
			c := harness.StartCRI(t, spec, paths)
			for _, sc := range table {
				t.Run(sc.name, func(t *testing.T) {
					notes := map[string][]string{}
					for _, rt := range criRuntimes {
						t.Run(rt, func(t *testing.T) {
							if rt == harness.HandlerCustom {
								harness.Require(t, harness.Executable(paths.Shim), "%s is not built (run `make build`)", paths.Shim)
							}
							n := sc.run(newCRIRow(t, c, rt))
							t.Logf("observed: %q", n)
							notes[rt] = n
						})
					}
					t.Run("differential", func(t *testing.T) {
						ref, ok1 := notes[harness.HandlerRunc]
						ours, ok2 := notes[harness.HandlerCustom]
						if !ok1 || !ok2 {
							t.Fatalf("a runtime row did not finish: nothing to compare (reference %v, ours %v)", ok1, ok2)
						}
						if !reflect.DeepEqual(ref, ours) {
							t.Errorf("observations differ:\n  reference: %q\n  ours:      %q", ref, ours)
						}
					})
				})
			}
		})
	}
}

// criRow is one scenario on one daemon with one runtime.
type criRow struct {
	*harness.CRI
	t      *testing.T
	prefix string // handler name prefix: "runc", "custom" or "custom-sandboxed"
	shim   string // base name of the shim binary the handler runs
	notes  []string
	// pauseless: the handler runs pods through the shim's Sandbox API (expectPauseless);
	// noPauseImage: and the pause image must not be in the CRI image store.
	pauseless, noPauseImage bool
	pods                    []string // the pods the row ran (RunPodSandbox), for its leak checks
}

// newCRIRow starts a row. The leak checks (a pause-less row's holders and pause image too) are
// registered first, so they run after the removal of the row's pods, also when the row failed.
func newCRIRow(t *testing.T, c *harness.CRI, prefix string) *criRow {
	t.Helper()
	snap := harness.SnapshotSockets()
	r := &criRow{CRI: c, t: t, prefix: prefix, shim: "containerd-shim-runc-v2"}
	if strings.HasPrefix(prefix, harness.HandlerCustom) {
		r.shim = "containerd-shim-custom-v1"
	}
	t.Cleanup(func() {
		if r.pauseless {
			r.expectNothingLeft()
		}
		leaks := c.WaitClean(snap, 10*time.Second)
		if !leaks.Empty() {
			t.Errorf("left behind after the row's pods were removed:%s", leaks)
			if err := harness.Reap(leaks); err != nil {
				t.Errorf("reap: %v", err)
			}
		}
		if left := c.CgroupsLeft(); len(left) > 0 {
			t.Errorf("cgroups left after the row's pods were removed: %v", left)
		}
	})
	t.Cleanup(func() { c.RemoveAllPods(t) })
	return r
}

func (r *criRow) note(format string, args ...any) {
	r.notes = append(r.notes, fmt.Sprintf(format, args...))
}

func (r *criRow) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), harness.CRITimeout)
}

// handler is the row's handler with suffix ("", "-wrapped", "-systemd").
func (r *criRow) handler(suffix string) string { return r.prefix + suffix }

// podConfig is a host-network pod named name in this row, with its own log directory.
func (r *criRow) podConfig(name string) *runtimeapi.PodSandboxConfig {
	full := name + "-" + r.prefix
	return &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: full, Uid: full + "-uid", Namespace: "cst"},
		LogDirectory: filepath.Join(r.LogRoot, full),
		Linux: &runtimeapi.LinuxPodSandboxConfig{
			CgroupParent: r.CgroupParent,
			SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
				NamespaceOptions: &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_NODE},
			},
		},
	}
}

// runPod runs a host-network pod with the row's plain handler.
func (r *criRow) runPod(name string) (string, *runtimeapi.PodSandboxConfig) {
	r.t.Helper()
	return r.runPodConfig(r.podConfig(name))
}

// runNetworkPod runs a pod on the daemon's bridge network (NamespaceMode_POD: the CRI plugin
// creates its network namespace and runs the CNI plugins) with the row's plain handler.
func (r *criRow) runNetworkPod(name string) (string, *runtimeapi.PodSandboxConfig) {
	r.t.Helper()
	cfg := r.podConfig(name)
	cfg.Linux.SecurityContext.NamespaceOptions.Network = runtimeapi.NamespaceMode_POD
	return r.runPodConfig(cfg)
}

// runPodConfig runs the pod of cfg with the row's plain handler.
func (r *criRow) runPodConfig(cfg *runtimeapi.PodSandboxConfig) (string, *runtimeapi.PodSandboxConfig) {
	r.t.Helper()
	ctx, cancel := r.ctx()
	defer cancel()
	resp, err := r.Runtime.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: cfg, RuntimeHandler: r.handler("")})
	if err != nil {
		r.t.Fatalf("RunPodSandbox %s (handler %s): %v", cfg.Metadata.Name, r.handler(""), err)
	}
	r.pods = append(r.pods, resp.PodSandboxId)
	r.expectPauseless(resp.PodSandboxId)
	return resp.PodSandboxId, cfg
}

// containerConfig is a busybox container running cmd.
func containerConfig(name string, cmd ...string) *runtimeapi.ContainerConfig {
	return &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: name},
		Image:    &runtimeapi.ImageSpec{Image: harness.ImageBusybox.Ref},
		Command:  cmd,
		LogPath:  name + ".log",
		Linux:    &runtimeapi.LinuxContainerConfig{},
	}
}

// create creates a container in pod and returns its id.
func (r *criRow) create(pod string, podCfg *runtimeapi.PodSandboxConfig, cfg *runtimeapi.ContainerConfig) string {
	r.t.Helper()
	ctx, cancel := r.ctx()
	defer cancel()
	resp, err := r.Runtime.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: pod, Config: cfg, SandboxConfig: podCfg})
	if err != nil {
		r.t.Fatalf("CreateContainer %s: %v", cfg.Metadata.Name, err)
	}
	return resp.ContainerId
}

// run creates and starts a container, and waits for it to be RUNNING.
func (r *criRow) run(pod string, podCfg *runtimeapi.PodSandboxConfig, cfg *runtimeapi.ContainerConfig) string {
	r.t.Helper()
	id := r.create(pod, podCfg, cfg)
	r.start(id)
	r.waitState(id, runtimeapi.ContainerState_CONTAINER_RUNNING)
	return id
}

func (r *criRow) start(id string) {
	r.t.Helper()
	ctx, cancel := r.ctx()
	defer cancel()
	if _, err := r.Runtime.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: id}); err != nil {
		r.t.Fatalf("StartContainer %s: %v", id, err)
	}
}

func (r *criRow) stop(id string, timeout int64) {
	r.t.Helper()
	ctx, cancel := r.ctx()
	defer cancel()
	if _, err := r.Runtime.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: id, Timeout: timeout}); err != nil {
		r.t.Fatalf("StopContainer %s: %v", id, err)
	}
}

func (r *criRow) remove(id string) {
	r.t.Helper()
	ctx, cancel := r.ctx()
	defer cancel()
	if _, err := r.Runtime.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: id}); err != nil {
		r.t.Fatalf("RemoveContainer %s: %v", id, err)
	}
}

// stopPod stops and removes pod.
func (r *criRow) removePod(pod string) {
	r.t.Helper()
	ctx, cancel := r.ctx()
	defer cancel()
	if _, err := r.Runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: pod}); err != nil {
		r.t.Fatalf("StopPodSandbox %s: %v", pod, err)
	}
	if _, err := r.Runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: pod}); err != nil {
		r.t.Fatalf("RemovePodSandbox %s: %v", pod, err)
	}
}

// removeKilledPod removes pod after its shim was SIGKILLed. Ours must take the first
// RemovePodSandbox; the reference (the pause path) may answer it "ttrpc: closed" while
// containerd 2.4 has not yet noticed its dead shim (referenceBugs "shim-sigkill/remove"): then
// it is asked again, for up to 10 s, and logged.
func (r *criRow) removeKilledPod(pod string) {
	r.t.Helper()
	if r.prefix != harness.HandlerRunc {
		r.removePod(pod)
		return
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := r.ctx()
		_, err := r.Runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: pod})
		if err == nil {
			_, err = r.Runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: pod})
		}
		cancel()
		if err == nil {
			return
		}
		if !strings.Contains(err.Error(), "ttrpc: closed") || time.Now().After(deadline) {
			r.t.Fatalf("removing pod %s: %v", pod, err)
		}
		r.t.Logf("known reference bug, asking again: %v (%s)", err, referenceBugs["containerd-2.4/shim-sigkill/remove"])
		time.Sleep(500 * time.Millisecond)
	}
}

// status returns the verbose status of container id.
func (r *criRow) status(id string) *runtimeapi.ContainerStatusResponse {
	r.t.Helper()
	ctx, cancel := r.ctx()
	defer cancel()
	st, err := r.Runtime.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: id, Verbose: true})
	if err != nil {
		r.t.Fatalf("ContainerStatus %s: %v", id, err)
	}
	return st
}

// waitState polls ContainerStatus until container id is in state.
func (r *criRow) waitState(id string, state runtimeapi.ContainerState) *runtimeapi.ContainerStatus {
	r.t.Helper()
	deadline := time.Now().Add(eventTimeout)
	for {
		st := r.status(id).GetStatus()
		if st.GetState() == state {
			return st
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("container %s (%s): want %s within %s, have %s (exit %d, reason %q, message %q)", id,
				st.GetMetadata().GetName(), state, eventTimeout, st.GetState(), st.GetExitCode(), st.GetReason(), st.GetMessage())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// exitNote describes how container id ended, for the differential.
func (r *criRow) exitNote(name, id string) {
	st := r.waitState(id, runtimeapi.ContainerState_CONTAINER_EXITED)
	r.note("%s: %s exit=%d reason=%s", name, st.GetState(), st.GetExitCode(), st.GetReason())
}

// verbosePid reads "pid" from the "info" JSON of a verbose status.
func verbosePid(info map[string]string) (int, error) {
	var v struct {
		Pid int `json:"pid"`
	}
	if err := json.Unmarshal([]byte(info["info"]), &v); err != nil {
		return 0, fmt.Errorf("verbose info: %w (%q)", err, info["info"])
	}
	if v.Pid <= 0 {
		return 0, fmt.Errorf("verbose info has no pid: %q", info["info"])
	}
	return v.Pid, nil
}

// containerPid is the host pid of container id's init process.
func (r *criRow) containerPid(id string) int {
	r.t.Helper()
	pid, err := verbosePid(r.status(id).GetInfo())
	if err != nil {
		r.t.Fatalf("container %s: %v", id, err)
	}
	return pid
}

// podPid is the host pid of pod's pause process.
func (r *criRow) podPid(pod string) int {
	r.t.Helper()
	ctx, cancel := r.ctx()
	defer cancel()
	st, err := r.Runtime.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: pod, Verbose: true})
	if err != nil {
		r.t.Fatalf("PodSandboxStatus %s: %v", pod, err)
	}
	pid, err := verbosePid(st.GetInfo())
	if err != nil {
		r.t.Fatalf("pod %s: %v", pod, err)
	}
	return pid
}

// shimOf returns the shim serving process pid: its parent (the shim is the subreaper of the
// processes runc starts), which must be a shim of this daemon running the row's binary.
func (r *criRow) shimOf(pid int) harness.Proc {
	r.t.Helper()
	ppid, err := parentPid(pid)
	if err != nil {
		r.t.Fatalf("parent of %d: %v", pid, err)
	}
	for _, p := range r.ShimProcesses() {
		if p.Pid == ppid {
			if name := filepath.Base(strings.Fields(p.Cmdline)[0]); name != r.shim {
				r.t.Fatalf("process %d is served by %s, want %s: %s", pid, name, r.shim, p)
			}
			return p
		}
	}
	r.t.Fatalf("parent %d of process %d is not a shim of this daemon (shims: %v)", ppid, pid, r.ShimProcesses())
	return harness.Proc{}
}

// parentPid reads the PPid of pid from /proc.
func parentPid(pid int) (int, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "PPid:"); ok {
			return strconv.Atoi(strings.TrimSpace(v))
		}
	}
	return 0, fmt.Errorf("no PPid in /proc/%d/status", pid)
}

// waitProcessGone waits for pid to exit.
func (r *criRow) waitProcessGone(p harness.Proc) {
	r.t.Helper()
	deadline := time.Now().Add(eventTimeout)
	for syscall.Kill(p.Pid, 0) == nil {
		if time.Now().After(deadline) {
			r.t.Fatalf("shim %s still running %s after its pod was removed", p, eventTimeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// execSync runs cmd in container id.
func (r *criRow) execSync(id string, timeout int64, cmd ...string) (*runtimeapi.ExecSyncResponse, error) {
	ctx, cancel := r.ctx()
	defer cancel()
	return r.Runtime.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: id, Cmd: cmd, Timeout: timeout})
}

// mustExecSync runs cmd in container id and fails unless it exits want.
func (r *criRow) mustExecSync(id string, want int32, cmd ...string) *runtimeapi.ExecSyncResponse {
	r.t.Helper()
	resp, err := r.execSync(id, 30, cmd...)
	if err != nil {
		r.t.Fatalf("ExecSync %s %q: %v", id, cmd, err)
	}
	if resp.ExitCode != want {
		r.t.Fatalf("ExecSync %s %q: exit %d, want %d (stdout %q, stderr %q)", id, cmd, resp.ExitCode, want, resp.Stdout, resp.Stderr)
	}
	return resp
}

// listContainers lists the containers of pod.
func (r *criRow) listContainers(pod string) []*runtimeapi.Container {
	r.t.Helper()
	ctx, cancel := r.ctx()
	defer cancel()
	resp, err := r.Runtime.ListContainers(ctx, &runtimeapi.ListContainersRequest{
		Filter: &runtimeapi.ContainerFilter{PodSandboxId: pod},
	})
	if err != nil {
		r.t.Fatalf("ListContainers: %v", err)
	}
	return resp.Containers
}

// shimsOfDaemon returns the daemon's shim processes running the row's binary.
func (r *criRow) shimsOfDaemon() []harness.Proc {
	var out []harness.Proc
	for _, p := range r.ShimProcesses() {
		if filepath.Base(strings.Fields(p.Cmdline)[0]) == r.shim {
			out = append(out, p)
		}
	}
	return out
}

// codeOf is the gRPC code of err ("OK" for nil).
func codeOf(err error) string { return status.Code(err).String() }

// logLine is one line of a CRI container log: "<RFC3339Nano> <stream> <P|F> <text>".
type logLine struct {
	Time   time.Time
	Stream string
	Tag    string
	Text   string
}

// readCRILog parses a CRI log file; a malformed line fails t.
func readCRILog(t *testing.T, path string) []logLine {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read container log: %v", err)
	}
	var out []logLine
	for _, line := range strings.Split(strings.TrimSuffix(string(raw), "\n"), "\n") {
		if line == "" {
			continue
		}
		f := strings.SplitN(line, " ", 4)
		if len(f) < 3 {
			t.Fatalf("%s: malformed CRI log line %q", path, line)
		}
		ts, err := time.Parse(time.RFC3339Nano, f[0])
		if err != nil || (f[1] != "stdout" && f[1] != "stderr") || (f[2] != "F" && f[2] != "P") {
			t.Fatalf("%s: malformed CRI log line %q (time: %v)", path, line, err)
		}
		text := ""
		if len(f) == 4 {
			text = f[3]
		}
		out = append(out, logLine{Time: ts, Stream: f[1], Tag: f[2], Text: text})
	}
	return out
}

// waitFor polls cond until it holds, failing t with what after eventTimeout.
func (r *criRow) waitFor(what string, cond func() bool) {
	r.t.Helper()
	deadline := time.Now().Add(eventTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			r.t.Fatalf("%s: not within %s", what, eventTimeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
