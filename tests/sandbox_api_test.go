//go:build integration && linux

package tests

// The Sandbox API as a contract: pause-less pods driven the way containerd's sandbox controller
// (and any client of containerd's sandbox controller service) may drive them, not only the way
// the CRI plugin does, on containerd 2.4 and 2.3. Each way a sandbox can end must release
// everything (holder, /dev/shm mount, pod files, pinned network namespace, cgroup, shim, socket,
// bundle); identifiers and error classes are what callers go by.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	sandboxAPI "github.com/containerd/containerd/api/runtime/sandbox/v1"
	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/sandbox"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/containerd/ttrpc"
	"google.golang.org/protobuf/types/known/anypb"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/custom-shim/containerd-shim-custom-v1/tests/harness"
)

// sbRow is one row of the sandbox API tables on one daemon.
type sbRow struct {
	*harness.Daemon
	t      *testing.T
	ctx    context.Context
	ctrl   sandbox.Controller
	parent string // cgroup parent of the row's pods
}

// TestSandboxAPI runs the endings table and the contract rows against containerd 2.4 and 2.3.
func TestSandboxAPI(t *testing.T) {
	paths := harness.DefaultPaths(t)
	specs, err := harness.CompatDaemons(paths, []string{"2.3", "2.4"})
	if err != nil {
		t.Fatal(err)
	}
	harness.Require(t, harness.Executable(paths.Shim), "%s is not built (run `make build`)", paths.Shim)
	for i := len(specs) - 1; i >= 0; i-- {
		spec := specs[i]
		t.Run(spec.Name, func(t *testing.T) {
			harness.Require(t, harness.Executable(spec.Containerd),
				"%s is missing (run `make compat-deps COMPAT_VERSIONS=%s`)", spec.Containerd, spec.Line)
			d := harness.Start(t, spec.DaemonSpec, paths)
			c := d.Client(t)
			for _, e := range sandboxEndings {
				t.Run("ending/"+e.name, func(t *testing.T) { newSBRow(t, d, c).ending(e) })
			}
			for _, sc := range sandboxContract {
				t.Run(sc.name, func(t *testing.T) { sc.run(newSBRow(t, d, c)) })
			}
		})
	}
}

func newSBRow(t *testing.T, d *harness.Daemon, c *containerd.Client) *sbRow {
	ctx, cancel := context.WithTimeout(d.Context(context.Background()), 2*time.Minute)
	t.Cleanup(cancel)
	r := &sbRow{Daemon: d, t: t, ctx: ctx, ctrl: c.SandboxController("shim"),
		parent: fmt.Sprintf("/cst-sb-%s", randomHex(4))}
	t.Cleanup(func() {
		for _, dir := range cgroupDirs(r.parent) {
			_ = syscall.Rmdir(dir)
		}
	})
	return r
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// cgroupDirs lists the directories of cgroup path in every mounted hierarchy that has it.
func cgroupDirs(path string) []string {
	v1, _ := filepath.Glob("/sys/fs/cgroup/*" + path)
	v2, _ := filepath.Glob("/sys/fs/cgroup" + path)
	return append(v1, v2...)
}

// podOptions is the PodSandboxConfig a row's pod is created with: its own IPC (a /dev/shm
// tmpfs), PID and UTS namespaces, the network of netns ("" for the host's), the row's cgroup
// parent.
func (r *sbRow) podOptions(name, netns string) *anypb.Any {
	net := runtimeapi.NamespaceMode_POD
	if netns == "" {
		net = runtimeapi.NamespaceMode_NODE
	}
	cfg := &runtimeapi.PodSandboxConfig{
		Metadata: &runtimeapi.PodSandboxMetadata{Name: name, Uid: name + "-uid", Namespace: "cst"},
		Hostname: "sb-" + name,
		Linux: &runtimeapi.LinuxPodSandboxConfig{
			CgroupParent: r.parent,
			SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
				NamespaceOptions: &runtimeapi.NamespaceOption{Network: net, Pid: runtimeapi.NamespaceMode_POD, Ipc: runtimeapi.NamespaceMode_POD},
			},
		},
	}
	a, err := anypb.New(cfg)
	if err != nil {
		r.t.Fatal(err)
	}
	return a
}

// create creates sandbox id through containerd's sandbox controller (the shim starts on a bundle
// of containerd's); the returned error is the controller's.
func (r *sbRow) create(id, netns string) error {
	return r.ctrl.Create(r.ctx, sandbox.Sandbox{ID: id, Runtime: sandbox.RuntimeOpts{Name: harness.RuntimeCustom}},
		sandbox.WithOptions(r.podOptions(id, netns)), sandbox.WithNetNSPath(netns))
}

// run creates and starts sandbox id and returns the holder's pid.
func (r *sbRow) run(id, netns string) int {
	r.t.Helper()
	if err := r.create(id, netns); err != nil {
		r.t.Fatalf("create sandbox %s: %v", id, err)
	}
	inst, err := r.ctrl.Start(r.ctx, id)
	if err != nil {
		r.t.Fatalf("start sandbox %s: %v", id, err)
	}
	if inst.Pid == 0 {
		r.t.Fatalf("start sandbox %s: pid 0", id)
	}
	return int(inst.Pid)
}

// newNetns makes a named network namespace for the row (ip netns add), removed at the end.
func (r *sbRow) newNetns() string {
	r.t.Helper()
	name := "cst-sb-" + randomHex(4)
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		r.t.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	r.t.Cleanup(func() { _ = exec.Command("ip", "netns", "delete", name).Run() })
	return "/run/netns/" + name
}

// bundle is the bundle containerd's sandbox controller made for sandbox id.
func (r *sbRow) bundle(id string) string {
	return filepath.Join(r.Dir, "state", "io.containerd.sandbox.controller.v1.shim", r.Namespace, id)
}

// address is the socket of the shim of sandbox id, as containerd recorded it in the bundle.
func (r *sbRow) address(id string) string {
	r.t.Helper()
	raw, err := os.ReadFile(filepath.Join(r.bundle(id), "bootstrap.json"))
	if err != nil {
		r.t.Fatalf("sandbox %s: %v", id, err)
	}
	var b struct {
		Address string `json:"address"`
	}
	if err := json.Unmarshal(raw, &b); err != nil {
		r.t.Fatalf("sandbox %s: bootstrap.json: %v", id, err)
	}
	return strings.TrimPrefix(b.Address, "unix://")
}

// shim connects to the shim of sandbox id straight on its socket.
func (r *sbRow) shim(id string) (sandboxAPI.TTRPCSandboxService, taskAPI.TTRPCTaskService) {
	r.t.Helper()
	addr := r.address(id)
	conn, err := net.Dial("unix", addr)
	if err != nil {
		r.t.Fatalf("dial the shim of %s: %v", id, err)
	}
	client := ttrpc.NewClient(conn)
	r.t.Cleanup(func() { client.Close() })
	return sandboxAPI.NewTTRPCSandboxClient(client), taskAPI.NewTTRPCTaskClient(client)
}

// shimPid is the pid of the shim serving sandbox id (its cmdline names the id).
func (r *sbRow) shimPid(id string) int {
	r.t.Helper()
	for _, p := range r.ShimProcesses() {
		if strings.Contains(p.Cmdline, "-id "+id+"@") { // the server's -id: <group>@<start's pid>
			return p.Pid
		}
	}
	r.t.Fatalf("no shim of sandbox %s among %v", id, r.ShimProcesses())
	return 0
}

// leftovers lists what is left of sandbox id once it ended: its holder, its shim, its socket,
// mounts and files under its bundle (and the bundle), its cgroup, and a pin of netns by a
// process of the daemon's.
func (r *sbRow) leftovers(id, socket, netns string) []string {
	var left []string
	if h := harness.HoldersOf([]string{id}); len(h) > 0 {
		left = append(left, fmt.Sprintf("holder %v", h))
	}
	for _, p := range r.ShimProcesses() {
		if strings.Contains(p.Cmdline, "-id "+id+"@") {
			left = append(left, "shim "+p.String())
		}
	}
	if _, err := os.Stat(socket); err == nil {
		left = append(left, "socket "+socket)
	}
	bundle := r.bundle(id)
	for _, m := range harness.MountsUnder(bundle) {
		left = append(left, "mount "+m)
	}
	if entries, err := os.ReadDir(bundle); err == nil {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		left = append(left, fmt.Sprintf("bundle %s %v", bundle, names))
	}
	if dirs := cgroupDirs(r.parent + "/" + id); len(dirs) > 0 {
		left = append(left, fmt.Sprintf("cgroups %v", dirs))
	}
	if netns != "" {
		if pins := r.netnsPins(netns); len(pins) > 0 {
			left = append(left, fmt.Sprintf("netns %s held by %v", netns, pins))
		}
	}
	return left
}

// netnsPins lists the daemon's shims that hold an fd on the network namespace at path.
func (r *sbRow) netnsPins(path string) []int {
	var st syscall.Stat_t
	if syscall.Stat(path, &st) != nil {
		return nil
	}
	want := fmt.Sprintf("net:[%d]", st.Ino)
	var out []int
	for _, p := range r.ShimProcesses() {
		pid := p.Pid
		fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		for _, fd := range fds {
			if l, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name())); l == want {
				out = append(out, pid)
				break
			}
		}
	}
	return out
}

// expectNothingLeft waits up to 10 s for sandbox id to be gone entirely.
func (r *sbRow) expectNothingLeft(id, socket, netns string) {
	r.t.Helper()
	var left []string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if left = r.leftovers(id, socket, netns); len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			break
		}
	}
	r.t.Errorf("left of sandbox %s: %q", id, left)
}

// sandboxEnding is one way a started sandbox ends.
type sandboxEnding struct {
	name string
	end  func(r *sbRow, id string, holder int)
}

var sandboxEndings = []sandboxEnding{
	{"stop-then-shutdown", func(r *sbRow, id string, _ int) {
		r.must("stop", r.ctrl.Stop(r.ctx, id))
		r.must("shutdown", r.ctrl.Shutdown(r.ctx, id))
	}},
	{"shutdown-alone", func(r *sbRow, id string, _ int) {
		r.must("shutdown", r.ctrl.Shutdown(r.ctx, id))
	}},
	{"shutdown-sandbox-rpc-alone", func(r *sbRow, id string, _ int) {
		// Straight on the shim's socket, then containerd's cleanup of the shim (what its
		// controller does after a failed create: ShutdownSandbox, then the shim's delete).
		sb, _ := r.shim(id)
		_, err := sb.ShutdownSandbox(r.ctx, &sandboxAPI.ShutdownSandboxRequest{SandboxID: id})
		r.must("ShutdownSandbox", errgrpc.ToNative(err))
		r.must("shutdown", r.ctrl.Shutdown(r.ctx, id))
	}},
	{"task-shutdown", func(r *sbRow, id string, _ int) {
		// The Task service's Shutdown of the sandbox's id, as containerd's shim manager sends it
		// when it deletes a shim (ShimManager.Delete), with no Sandbox API call before.
		_, task := r.shim(id)
		_, err := task.Shutdown(r.ctx, &taskAPI.ShutdownRequest{ID: id})
		if err != nil && !errors.Is(err, ttrpc.ErrClosed) {
			r.t.Errorf("Task.Shutdown %s: %v", id, err)
		}
		r.waitGone(r.shimPid(id))
		r.removeFromContainerd(id)
	}},
	{"shim-sigkill", func(r *sbRow, id string, _ int) {
		// containerd sees its connection close and runs the shim's delete action; the caller
		// then shuts the sandbox down (NotFound: nothing serves it any more) and forgets it.
		pid := r.shimPid(id)
		_ = syscall.Kill(pid, syscall.SIGKILL)
		r.waitGone(pid)
		r.removeFromContainerd(id)
	}},
	{"holder-killed", func(r *sbRow, id string, holder int) {
		_ = syscall.Kill(holder, syscall.SIGKILL)
		wctx, cancel := context.WithTimeout(r.ctx, 10*time.Second)
		defer cancel()
		if _, err := r.ctrl.Wait(wctx, id); err != nil {
			r.t.Errorf("Wait after the holder was killed: %v", err)
		}
		st, err := r.ctrl.Status(r.ctx, id, false)
		if err != nil || st.State != "SANDBOX_NOTREADY" {
			r.t.Errorf("status after the holder was killed: %q %v, want SANDBOX_NOTREADY", st.State, err)
		}
		r.must("stop", r.ctrl.Stop(r.ctx, id))
		r.must("shutdown", r.ctrl.Shutdown(r.ctx, id))
	}},
}

// ending runs a sandbox with a netns of the row's, ends it as e does, and checks nothing of it
// is left.
func (r *sbRow) ending(e sandboxEnding) {
	netns := r.newNetns()
	id := "end-" + randomHex(6)
	holder := r.run(id, netns)
	addr := r.address(id)
	if dirs := cgroupDirs(r.parent + "/" + id); len(dirs) == 0 {
		r.t.Errorf("no cgroup %s/%s for the holder", r.parent, id)
	}
	e.end(r, id, holder)
	r.expectNothingLeft(id, addr, netns)
}

func (r *sbRow) must(what string, err error) {
	r.t.Helper()
	if err != nil {
		r.t.Errorf("%s: %v", what, err)
	}
}

// waitGone waits for process pid to exit.
func (r *sbRow) waitGone(pid int) {
	r.t.Helper()
	for deadline := time.Now().Add(10 * time.Second); syscall.Kill(pid, 0) == nil; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			r.t.Fatalf("process %d still running", pid)
		}
	}
}

// removeFromContainerd is what a caller does with a sandbox whose shim is gone: the controller's
// Shutdown (an error: no shim serves it), then the controller forgets it with its Stop (a no-op
// for an unknown sandbox).
func (r *sbRow) removeFromContainerd(id string) {
	r.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := r.ctrl.Shutdown(r.ctx, id)
		if err == nil || errdefs.IsNotFound(err) || time.Now().After(deadline) {
			r.t.Logf("shutdown after the shim went: %v", err)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// sandboxContract rows: identifiers and error classes.
var sandboxContract = []struct {
	name string
	run  func(*sbRow)
}{
	{"ids", sbIDs},
	{"already-exists-first", sbAlreadyExists},
	{"netns-not-a-netns", sbNetnsNotNetns},
	{"netns-pinned", sbNetnsPinned},
	{"platform-ping", sbPlatformPing},
}

// Any id safe as one path element is accepted ("#", ":", "@", a 200-byte id); ids that are not
// ("", ".", "..", with "/", with NUL, longer than 255 bytes) are InvalidArgument, straight on a
// shim's socket (containerd's own controller accepts fewer: its identifiers' pattern).
func sbIDs(r *sbRow) {
	host := "ids-" + randomHex(4)
	r.run(host, "")
	defer func() { r.must("shutdown "+host, r.ctrl.Shutdown(r.ctx, host)) }()
	sb, _ := r.shim(host)
	for _, id := range []string{"lifecycle#01-8506aac5", "a:b@c", strings.Repeat("x", 200)} {
		bundle := r.t.TempDir()
		_, err := sb.CreateSandbox(r.ctx, &sandboxAPI.CreateSandboxRequest{SandboxID: id, BundlePath: bundle, Options: r.podOptions("ids", "")})
		if err != nil {
			r.t.Errorf("CreateSandbox %q: %v, want accepted", id, err)
			continue
		}
		_, err = sb.ShutdownSandbox(r.ctx, &sandboxAPI.ShutdownSandboxRequest{SandboxID: id})
		r.must("ShutdownSandbox "+id, errgrpc.ToNative(err))
	}
	for _, id := range []string{"", ".", "..", "a/b", "a\x00b", strings.Repeat("y", 256)} {
		_, err := sb.CreateSandbox(r.ctx, &sandboxAPI.CreateSandboxRequest{SandboxID: id, BundlePath: r.t.TempDir(), Options: r.podOptions("ids", "")})
		if err = errgrpc.ToNative(err); !errdefs.IsInvalidArgument(err) {
			r.t.Errorf("CreateSandbox %q: %v, want InvalidArgument", id, err)
		}
	}
}

// A second CreateSandbox of an id the shim has is AlreadyExists, whatever else is wrong with it.
func sbAlreadyExists(r *sbRow) {
	id := "dup-" + randomHex(4)
	r.run(id, "")
	defer func() { r.must("shutdown", r.ctrl.Shutdown(r.ctx, id)) }()
	sb, _ := r.shim(id)
	for _, req := range []*sandboxAPI.CreateSandboxRequest{
		{SandboxID: id, BundlePath: r.bundle(id), Options: r.podOptions(id, "")},
		{SandboxID: id, BundlePath: "relative/bundle"},
		{SandboxID: id, BundlePath: r.t.TempDir(), NetnsPath: "/nonexistent/netns", Options: &anypb.Any{TypeUrl: "bogus"}},
	} {
		_, err := sb.CreateSandbox(r.ctx, req)
		if err = errgrpc.ToNative(err); !errdefs.IsAlreadyExists(err) {
			r.t.Errorf("second CreateSandbox %s (bundle %q, netns %q): %v, want AlreadyExists", id, req.BundlePath, req.NetnsPath, err)
		}
	}
}

// A netns_path that is not a network namespace is InvalidArgument naming the path (through
// containerd's controller, whose Create returns the shim's error).
func sbNetnsNotNetns(r *sbRow) {
	file := filepath.Join(r.t.TempDir(), "plain-file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		r.t.Fatal(err)
	}
	for _, path := range []string{file, "/proc/self/ns/ipc", filepath.Join(r.t.TempDir(), "missing")} {
		id := "nons-" + randomHex(4)
		err := r.create(id, path)
		if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), path) {
			r.t.Errorf("create with netns %s: %v, want InvalidArgument naming the path", path, err)
		}
		r.expectNothingLeft(id, "", "")
	}
}

// A network namespace given at CreateSandbox is pinned until the sandbox stops: the caller may
// remove its bind mount (ip netns delete) and the pod still starts in that namespace; Stop lets
// go of it.
func sbNetnsPinned(r *sbRow) {
	netns := r.newNetns()
	var st syscall.Stat_t
	if err := syscall.Stat(netns, &st); err != nil {
		r.t.Fatal(err)
	}
	id := "pin-" + randomHex(4)
	if err := r.create(id, netns); err != nil {
		r.t.Fatalf("create: %v", err)
	}
	if out, err := exec.Command("ip", "netns", "delete", filepath.Base(netns)).CombinedOutput(); err != nil {
		r.t.Fatalf("ip netns delete: %v: %s", err, out)
	}
	inst, err := r.ctrl.Start(r.ctx, id)
	if err != nil {
		r.t.Fatalf("start after the netns's bind mount went: %v", err)
	}
	var hst syscall.Stat_t
	if err := syscall.Stat(fmt.Sprintf("/proc/%d/ns/net", inst.Pid), &hst); err != nil || hst.Ino != st.Ino {
		r.t.Errorf("holder's netns inode %d (%v), want the pinned %d", hst.Ino, err, st.Ino)
	}
	r.must("stop", r.ctrl.Stop(r.ctx, id))
	shim := r.shimPid(id)
	want := fmt.Sprintf("net:[%d]", st.Ino)
	fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", shim))
	for _, fd := range fds {
		if l, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", shim, fd.Name())); l == want {
			r.t.Errorf("the shim still holds the pod's netns after Stop (fd %s)", fd.Name())
		}
	}
	r.must("shutdown", r.ctrl.Shutdown(r.ctx, id))
}

// Platform answers the shim's own platform, Ping answers for a sandbox the shim has; an unknown
// id is NotFound for both.
func sbPlatformPing(r *sbRow) {
	id := "plat-" + randomHex(4)
	r.run(id, "")
	defer func() { r.must("shutdown", r.ctrl.Shutdown(r.ctx, id)) }()
	sb, _ := r.shim(id)
	p, err := sb.Platform(r.ctx, &sandboxAPI.PlatformRequest{SandboxID: id})
	if pl := p.GetPlatform(); err != nil || pl.GetOS() != "linux" || pl.GetArchitecture() != runtime.GOARCH {
		r.t.Errorf("platform %v: %v", pl, err)
	}
	if _, err := sb.PingSandbox(r.ctx, &sandboxAPI.PingRequest{SandboxID: id}); err != nil {
		r.t.Errorf("ping: %v", err)
	}
	for name, err := range map[string]error{
		"ping":     callErr(sb.PingSandbox(r.ctx, &sandboxAPI.PingRequest{SandboxID: "unknown"})),
		"platform": callErr(sb.Platform(r.ctx, &sandboxAPI.PlatformRequest{SandboxID: "unknown"})),
	} {
		if !errdefs.IsNotFound(errgrpc.ToNative(err)) {
			r.t.Errorf("%s of an unknown sandbox: %v, want NotFound", name, err)
		}
	}
}

func callErr[T any](_ T, err error) error { return err }
