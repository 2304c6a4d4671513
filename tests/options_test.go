//go:build integration && linux

package tests

// Runtime options through real containerd: nil options, runc Options as TaskOptions and as
// runtime options, runtimeoptions.v1 with
// a TOML body and with a TOML file (ctr --runtime-config-path). Each must honour BinaryName (a
// wrapper that records its calls and forwards to runc proves the OCI runtime was called through
// it), ShimCgroup (the shim process is moved into a cgroup v1 dir made for the row) and give the
// shim containerd's oom_score_adj plus one. The reference takes only runc Options, so where ours
// is given runtimeoptions the reference row is given the equivalent runc Options: the
// differential then checks that both option types end in the same behaviour.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/api/types"
	"github.com/containerd/containerd/api/types/runc/options"
	runtimeoptions "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/typeurl/v2"
	"github.com/opencontainers/runtime-spec/specs-go/features"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/custom-shim/containerd-shim-custom-v1/tests/harness"
)

var optionsScenarios = []scenario{
	{"options-nil", func(r *row) *observation { return optionsRow(r, optsNil) }},
	{"options-runc-task", func(r *row) *observation { return optionsRow(r, optsRuncTask) }},
	{"options-runc-runtime", func(r *row) *observation { return optionsRow(r, optsRuncRuntime) }},
	{"options-toml-body", func(r *row) *observation { return optionsRow(r, optsTOMLBody) }},
	{"options-toml-path", func(r *row) *observation { return optionsRow(r, optsTOMLPath) }},
}

func TestRuntimeOptions(t *testing.T) { runTable(t, optionsScenarios) }

// How a row passes its options.
const (
	optsNil         = iota // no options at all
	optsRuncTask           // runc Options{BinaryName} as TaskOptions (client.NewTask)
	optsRuncRuntime        // runc Options{BinaryName, ShimCgroup} as the container's runtime options
	optsTOMLBody           // ours: runtimeoptions{ConfigBody}; reference: the same as runc Options
	optsTOMLPath           // ours: ctr --runtime-config-path; reference: ctr --runc-binary
)

// recordingRuntime writes, in dir, an OCI runtime wrapper that appends its arguments to a log
// and execs the real runtime. It returns the wrapper's path and the log's.
func recordingRuntime(t *testing.T, dir, runtimeBin string) (bin, record string) {
	t.Helper()
	bin, record = filepath.Join(dir, "runc-wrapper"), filepath.Join(dir, "runc-calls")
	script := fmt.Sprintf("#!/bin/sh\necho \"$*\" >> %q\nexec %q \"$@\"\n", record, runtimeBin)
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return bin, record
}

// runtimeVerbs returns the verbs the wrapper ran for container id, in order, once each.
// go-runc puts its global flags (--root, --log, --log-format, --systemd-cgroup) first.
func runtimeVerbs(t *testing.T, record, id string) []string {
	t.Helper()
	raw, err := os.ReadFile(record)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	var verbs []string
	for _, line := range strings.Split(string(raw), "\n") {
		f := strings.Fields(line)
		if !slices.Contains(f, id) {
			continue
		}
		i := 0
		for i < len(f) && strings.HasPrefix(f[i], "-") {
			switch f[i] {
			case "--root", "--log", "--log-format", "--criu":
				i += 2
			default:
				i++
			}
		}
		if i < len(f) && !slices.Contains(verbs, f[i]) {
			verbs = append(verbs, f[i])
		}
	}
	return verbs
}

// shimCgroupV1 makes a cgroup v1 dir under the memory and pids hierarchies, removed when t ends
// (after the shim in it exited), and returns its path relative to the hierarchy roots.
func shimCgroupV1(t *testing.T, name string) string {
	t.Helper()
	for _, c := range []string{"memory", "pids"} {
		dir := filepath.Join("/sys/fs/cgroup", c, name)
		if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			harness.Require(t, false, "cgroup v1 %s hierarchy: %v", c, err)
		}
		t.Cleanup(func() {
			deadline := time.Now().Add(10 * time.Second)
			for syscall.Rmdir(dir) != nil && time.Now().Before(deadline) {
				time.Sleep(100 * time.Millisecond)
			}
			if _, err := os.Stat(dir); err == nil {
				t.Errorf("cgroup %s still exists (a process is left in it)", dir)
			}
		})
	}
	return "/" + name
}

// inCgroupV1 reports whether pid is in cgroup path of the memory hierarchy.
func inCgroupV1(t *testing.T, pid int, path string) bool {
	t.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) == 3 && slices.Contains(strings.Split(f[1], ","), "memory") {
			return f[2] == path
		}
	}
	return false
}

func oomScoreAdj(t *testing.T, pid int) int {
	t.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/oom_score_adj", pid))
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// daemonPid finds this daemon's containerd process (its command line names its config).
func daemonPid(t *testing.T, d *harness.Daemon) int {
	t.Helper()
	for _, p := range harness.ProcessesNaming(filepath.Join(d.Dir, "config.toml"), false) {
		if strings.Contains(p.Cmdline, d.Spec.Containerd) {
			return p.Pid
		}
	}
	t.Fatalf("containerd of %s not found", d.Dir)
	return 0
}

// optionsRow runs `sleep` in a container created with options passed the way `how` says,
// checks where the shim runs and through which binary runc was called, then kills and deletes
// the container. What it found goes into the observation, for the differential.
func optionsRow(r *row, how int) *observation {
	t := r.t
	dir := t.TempDir()
	wrapper, record := recordingRuntime(t, dir, r.Paths.Runc())
	id := r.id("opts")
	var cgroup string
	if how == optsRuncRuntime || how == optsTOMLBody {
		cgroup = shimCgroupV1(t, fmt.Sprintf("%s-shim-%s", r.Namespace, r.short))
	}
	toml := fmt.Sprintf("BinaryName = %q\n", wrapper)
	if cgroup != "" {
		toml += fmt.Sprintf("ShimCgroup = %q\n", cgroup)
	}
	runcOpts := &options.Options{BinaryName: wrapper, ShimCgroup: cgroup}
	ours := r.runtime == harness.RuntimeCustom

	var task containerd.Task
	a := newAPIRow(r)
	switch how {
	case optsTOMLPath:
		args := r.runArgs("-d", "--null-io")
		if ours {
			path := filepath.Join(dir, "options.toml")
			if err := os.WriteFile(path, []byte(toml), 0o644); err != nil {
				t.Fatal(err)
			}
			args = append(args, "--runtime-config-path", path)
		} else {
			args = append(args, "--runc-binary", wrapper)
		}
		r.expect(r.ctr(nil, append(args, harness.ImageBusybox.Ref, id, "sleep", "1000")...), 0, "-")
		ctr, err := a.c.LoadContainer(a.ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if task, err = ctr.Task(a.ctx, nil); err != nil {
			t.Fatal(err)
		}
	default:
		var runtimeOpts any
		switch {
		case how == optsRuncRuntime, how == optsTOMLBody && !ours:
			runtimeOpts = runcOpts
		case how == optsTOMLBody:
			runtimeOpts = &runtimeoptions.Options{ConfigBody: []byte(toml)}
		}
		ctr, err := newContainerWithRuntime(a, id, runtimeOpts, "sleep", "1000")
		if err != nil {
			t.Fatalf("new container %s: %v", id, err)
		}
		var taskOpts []containerd.NewTaskOpts
		if how == optsRuncTask {
			taskOpts = append(taskOpts, func(_ context.Context, _ *containerd.Client, ti *containerd.TaskInfo) error {
				ti.Options = runcOpts
				return nil
			})
		}
		if task, err = ctr.NewTask(a.ctx, cio.NullIO, taskOpts...); err != nil {
			t.Fatalf("new task %s: %v", id, err)
		}
		if err := task.Start(a.ctx); err != nil {
			t.Fatalf("start %s: %v", id, err)
		}
	}
	shim := r.expectShim()
	if cgroup != "" {
		in := inCgroupV1(t, shim.Pid, cgroup)
		if !in {
			t.Errorf("shim %s is not in ShimCgroup %s", shim, cgroup)
		}
		a.note("shim in ShimCgroup: %v", in)
	}
	delta := oomScoreAdj(t, shim.Pid) - oomScoreAdj(t, daemonPid(t, r.Daemon))
	if delta != 1 {
		t.Errorf("shim oom_score_adj is containerd's %+d, want +1", delta)
	}
	a.note("shim oom_score_adj - containerd's: %d", delta)
	code := a.killInit(task)
	r.waitExit(id, id, 137) // the exit event is out before Delete: events stay in order
	if _, err := task.Delete(a.ctx); err != nil {
		t.Fatalf("delete task %s: %v", id, err)
	}
	r.expect(r.ctr(nil, "containers", "rm", id), 0, "")
	a.note("exit %d", code)
	verbs := runtimeVerbs(t, record, id)
	if how == optsNil {
		if len(verbs) != 0 {
			t.Errorf("no options, yet the wrapper ran %v", verbs)
		}
	} else {
		// The calls must go through the wrapper: create, start, kill, delete at least.
		for _, v := range []string{"create", "start", "kill", "delete"} {
			if !slices.Contains(verbs, v) {
				t.Errorf("%s was not run through BinaryName %s (it ran %v)", v, wrapper, verbs)
			}
			a.note("%s through BinaryName: %v", v, slices.Contains(verbs, v))
		}
	}
	return a.observation()
}

// newContainerWithRuntime is harness.NewContainer with runtime options.
func newContainerWithRuntime(a *apiRow, id string, runtimeOpts any, args ...string) (containerd.Container, error) {
	img, err := a.c.GetImage(a.ctx, harness.ImageBusybox.Ref)
	if err != nil {
		return nil, err
	}
	return a.c.NewContainer(a.ctx, id,
		containerd.WithImage(img),
		containerd.WithNewSnapshot(id+"-snapshot", img),
		containerd.WithRuntime(a.runtime, runtimeOpts),
		containerd.WithNewSpec(oci.WithImageConfig(img), oci.WithProcessArgs(args...)),
	)
}

// TestInfoOptions runs the shim binary's -info with each options payload containerd may send
// (B.40): each must answer with a RuntimeInfo carrying the OCI runtime's features, asked of
// BinaryName when one is set. An unknown type fails naming it. The reference shim (2.4.2) is
// run alongside: it must agree on nil and runc Options; on runtimeoptions it fails (logged).
func TestInfoOptions(t *testing.T) {
	paths := harness.DefaultPaths(t)
	harness.Require(t, harness.Executable(paths.Shim), "%s is not built (run `make build`)", paths.Shim)
	ref := filepath.Join(paths.DepsBin, "containerd-shim-runc-v2")
	harness.Require(t, harness.Executable(ref) && harness.Executable(paths.Runc()), "%s and runc are missing (run `make deps`)", ref)
	dir := t.TempDir()
	wrapper, record := recordingRuntime(t, dir, paths.Runc())
	tomlPath := filepath.Join(dir, "options.toml")
	if err := os.WriteFile(tomlPath, []byte(fmt.Sprintf("BinaryName = %q\n", wrapper)), 0o644); err != nil {
		t.Fatal(err)
	}
	marshal := func(m proto.Message) []byte {
		a, err := typeurl.MarshalAnyToProto(m)
		if err != nil {
			t.Fatal(err)
		}
		b, err := proto.Marshal(a)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	unknown, err := proto.Marshal(&anypb.Any{TypeUrl: "example.com/no.such.Options", Value: []byte{1}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name        string
		stdin       []byte
		wrapped     bool // features must come from the wrapper
		refAgrees   bool
		wantFailure string
	}{
		{"nil", nil, false, true, ""},
		{"runc-options", marshal(&options.Options{BinaryName: wrapper}), true, true, ""},
		{"runtimeoptions-body", marshal(&runtimeoptions.Options{ConfigBody: []byte(fmt.Sprintf("BinaryName = %q\nSystemdCgroup = false\n", wrapper))}), true, false, ""},
		{"runtimeoptions-path", marshal(&runtimeoptions.Options{ConfigPath: tomlPath}), true, false, ""},
		{"unknown-type", unknown, false, false, "example.com/no.such.Options"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_ = os.Remove(record)
			info, stderr, err := runInfo(paths, paths.Shim, tc.stdin)
			if tc.wantFailure != "" {
				if err == nil || !strings.Contains(stderr, tc.wantFailure) {
					t.Fatalf("-info: want a failure naming %q, got %v, stderr %q", tc.wantFailure, err, stderr)
				}
				return
			}
			if err != nil {
				t.Fatalf("-info: %v, stderr %q", err, stderr)
			}
			if info.GetName() != harness.RuntimeCustom {
				t.Errorf("name %q", info.GetName())
			}
			if !proto.Equal(info.GetOptions(), optionsAny(t, tc.stdin)) {
				t.Errorf("options echoed %v, sent %v", info.GetOptions(), optionsAny(t, tc.stdin))
			}
			ours := featuresOf(t, info)
			if calls := runtimeVerbsAny(t, record); tc.wrapped != slices.Contains(calls, "features") {
				t.Errorf("wrapper calls %v: features through BinaryName = %v, want %v", calls, !tc.wrapped, tc.wrapped)
			}
			refInfo, refStderr, refErr := runInfo(paths, ref, tc.stdin)
			switch {
			case tc.refAgrees && refErr != nil:
				t.Errorf("reference -info failed: %v, stderr %q", refErr, refStderr)
			case tc.refAgrees:
				if theirs := featuresOf(t, refInfo); theirs.OCIVersionMax != ours.OCIVersionMax || !slices.Equal(theirs.Hooks, ours.Hooks) {
					t.Errorf("features differ from the reference's: ours %+v, reference %+v", ours, theirs)
				}
			default:
				t.Logf("reference -info with %s (not compared: it takes runc Options only): err %v, stderr %q", tc.name, refErr, strings.TrimSpace(refStderr))
			}
		})
	}
}

// runInfo runs `shim -info` with stdin and decodes its RuntimeInfo.
func runInfo(paths harness.Paths, shim string, stdin []byte) (*types.RuntimeInfo, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), harness.CtrTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, shim, "-info")
	cmd.Env = []string{"PATH=" + paths.DepsBin + ":/usr/sbin:/usr/bin:/sbin:/bin"}
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, stderr.String(), err
	}
	var info types.RuntimeInfo
	if err := proto.Unmarshal(out, &info); err != nil {
		return nil, stderr.String(), fmt.Errorf("decode RuntimeInfo: %w", err)
	}
	return &info, stderr.String(), nil
}

func optionsAny(t *testing.T, stdin []byte) *anypb.Any {
	t.Helper()
	if len(stdin) == 0 {
		return nil
	}
	var a anypb.Any
	if err := proto.Unmarshal(stdin, &a); err != nil {
		t.Fatal(err)
	}
	return &a
}

func featuresOf(t *testing.T, info *types.RuntimeInfo) features.Features {
	t.Helper()
	var f features.Features
	if info.GetFeatures() == nil {
		t.Fatalf("no features in %v", info)
	}
	if err := json.Unmarshal(info.GetFeatures().GetValue(), &f); err != nil {
		t.Fatalf("decode features %s: %v", info.GetFeatures().GetTypeUrl(), err)
	}
	if f.OCIVersionMax == "" {
		t.Fatalf("empty features %+v", f)
	}
	return f
}

// runtimeVerbsAny returns every verb the wrapper ran (whatever the container).
func runtimeVerbsAny(t *testing.T, record string) []string {
	t.Helper()
	raw, err := os.ReadFile(record)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var verbs []string
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			verbs = append(verbs, f[len(f)-1])
		}
	}
	return verbs
}

// TestRuntimeOptionsErrors: through real containerd, options of an unknown type fail naming
// the type; a BinaryName that does not exist, or an OCI runtime that fails, fail the Create
// with the runtime's own message; and neither leaks a descriptor or a process in the shim
// (which serves another container of its group throughout, so it stays up to be counted).
func TestRuntimeOptionsErrors(t *testing.T) {
	paths := harness.DefaultPaths(t)
	harness.Require(t, harness.Executable(paths.Shim), "%s is not built (run `make build`)", paths.Shim)
	for _, spec := range harness.Daemons(paths) {
		t.Run(spec.Name, func(t *testing.T) {
			d := harness.Start(t, spec, paths)
			r := newRow(t, d, harness.RuntimeCustom)
			a := newAPIRow(r)
			dir := t.TempDir()
			failing := filepath.Join(dir, "failing-runtime")
			// Like runc, it reports its error as a JSON line in --log and exits 1.
			script := `#!/bin/sh
log=""
while [ $# -gt 0 ]; do [ "$1" = --log ] && log=$2; shift; done
[ -n "$log" ] && printf '%s\n' '{"level":"error","msg":"fake runtime: refusing to create this container","time":"2026-01-01T00:00:00Z"}' >> "$log"
exit 1
`
			if err := os.WriteFile(failing, []byte(script), 0o755); err != nil {
				t.Fatal(err)
			}
			group := oci.WithAnnotations(map[string]string{"io.kubernetes.cri.sandbox-id": "opts-errors-" + d.Namespace})
			newTask := func(role string, runtimeOpts any) error {
				id := r.id(role)
				img, err := a.c.GetImage(a.ctx, harness.ImageBusybox.Ref)
				if err != nil {
					t.Fatal(err)
				}
				ctr, err := a.c.NewContainer(a.ctx, id,
					containerd.WithImage(img),
					containerd.WithNewSnapshot(id+"-snapshot", img),
					containerd.WithRuntime(a.runtime, runtimeOpts),
					containerd.WithNewSpec(oci.WithImageConfig(img), oci.WithProcessArgs("sleep", "1000"), group),
				)
				if err != nil {
					t.Fatalf("new container %s: %v", id, err)
				}
				task, err := ctr.NewTask(a.ctx, cio.NullIO)
				if err != nil {
					return err
				}
				return task.Start(a.ctx)
			}
			if err := newTask("anchor", nil); err != nil {
				t.Fatalf("anchor container: %v", err)
			}
			shim := r.expectShim()
			fds, kids := fdTargets(t, shim.Pid), children(shim.Pid)

			for _, tc := range []struct {
				role  string
				opts  any
				class string
				want  []string
			}{
				{"unknown", &types.Platform{OS: "linux"}, "", []string{"containerd.types.Platform"}},
				{"missing", &runtimeoptions.Options{ConfigBody: []byte("BinaryName = \"/nonexistent/runc\"\n")}, "",
					[]string{"/nonexistent/runc", "no such file or directory"}},
				{"failing", &options.Options{BinaryName: failing}, "",
					[]string{"OCI runtime create failed", "fake runtime: refusing to create this container"}},
			} {
				err := newTask(tc.role, tc.opts)
				if err == nil {
					t.Errorf("%s: create succeeded", tc.role)
					continue
				}
				t.Logf("%s: %s: %v", tc.role, class(err), err)
				for _, w := range tc.want {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("%s: error %q does not say %q", tc.role, err, w)
					}
				}
				if now := r.ShimProcesses(); len(now) != 1 || now[0].Pid != shim.Pid {
					t.Fatalf("%s: the group's shim %s is gone or another started: %v", tc.role, shim, now)
				}
			}
			// The shim's descriptors and children settle back to what they were.
			deadline := time.Now().Add(5 * time.Second)
			for {
				nowFds, nowKids := fdTargets(t, shim.Pid), children(shim.Pid)
				// Nothing new: connections the daemon closes meanwhile may only lower the count.
				if subMultiset(nowFds, fds) && slices.Equal(nowKids, kids) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("shim %d: fds %v and children %v before the failed creates,\n%v and %v after",
						shim.Pid, fds, kids, nowFds, nowKids)
				}
				time.Sleep(100 * time.Millisecond)
			}
		})
	}
}

// fdTargets lists what the descriptors of pid point at, sorted.
func fdTargets(t *testing.T, pid int) []string {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		target, _ := os.Readlink(filepath.Join(dir, e.Name()))
		// Left out: the pidfd Go's os/exec holds for every runtime call. reaper.Default.Wait
		// reaps by pid, so the exec.Cmd's own Wait fails (ECHILD) and its pidfd is only closed
		// when the garbage collector finalises the os.Process: bounded, but not at once.
		if target == "anon_inode:[pidfd]" {
			continue
		}
		out = append(out, target)
	}
	slices.Sort(out)
	return out
}

// children lists the pids whose parent is pid.
func children(pid int) []int {
	var out []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", n))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so split after the last ')'.
		s := string(raw)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			out = append(out, n)
		}
	}
	return out
}

// subMultiset reports whether every element of sub occurs in set at least as often.
func subMultiset(sub, set []string) bool {
	count := map[string]int{}
	for _, s := range set {
		count[s]++
	}
	for _, s := range sub {
		if count[s]--; count[s] < 0 {
			return false
		}
	}
	return true
}
