//go:build integration && linux

package tests

// Security (docs/reliability.md): the shim socket and the files the shim creates are closed to
// other users; a client of another uid is refused by the same-user handshake; ids and exec ids
// of a request sent straight to the shim's ttrpc API cannot make it touch anything outside the
// bundle and its state dirs.

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/containerd/ttrpc"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/custom-shim/containerd-shim-custom-v1/tests/harness"
)

var securityScenarios = []scenario{
	{"file-modes", scenarioFileModes},
	{"other-uid-refused", scenarioOtherUID},
	{"traversal", scenarioTraversal},
}

func TestSecurity(t *testing.T) {
	paths := harness.DefaultPaths(t)
	harness.Require(t, harness.Executable(paths.Shim), "%s is not built (run `make build`)", paths.Shim)
	d := harness.Start(t, harness.Daemons(paths)[0], paths)
	for _, sc := range securityScenarios {
		t.Run(sc.name, func(t *testing.T) {
			obs := map[string]*observation{}
			for _, rt := range runtimes {
				t.Run(rt, func(t *testing.T) { obs[rt] = sc.run(newRow(t, d, rt)) })
			}
			if sc.name == "traversal" {
				// The reference validates no exec id and writes into any bundle it is given
				// (logged by its row); ours must refuse every request.
				t.Run("differential", func(t *testing.T) {
					if ref, ours := obs[harness.RuntimeRunc], obs[harness.RuntimeCustom]; ref == nil || ours == nil {
						t.Fatal("a row failed: nothing to compare")
					} else {
						t.Logf("known reference deviation, not failing: reference %v, ours %v", ref.Notes, ours.Notes)
					}
				})
				return
			}
			t.Run("differential", func(t *testing.T) { compare(t, obs) })
		})
	}
}

// shimSocket starts a container and returns its id and the path of its shim's socket.
func (r *row) shimSocket(role string) (string, string) {
	r.t.Helper()
	id := r.id(role)
	r.expect(r.ctr(nil, r.runArgs("-d", "--null-io", harness.ImageBusybox.Ref, id, "sleep", "1000")...), 0, "-")
	r.WaitTask(r.t, id, "RUNNING", eventTimeout)
	addr, err := r.ShimAddress(id)
	if err != nil {
		r.t.Fatal(err)
	}
	return id, strings.TrimPrefix(addr, "unix://")
}

// The socket is 0600 (no access for group or others) in a directory closed to them too, and
// nothing in the bundle (address, options.json, init.pid, log.json, ...) is group- or
// world-writable.
func scenarioFileModes(r *row) *observation {
	var notes []string
	id, socket := r.shimSocket("modes")
	for _, path := range []string{socket, filepath.Dir(socket)} {
		st, err := os.Stat(path)
		if err != nil {
			r.t.Fatal(err)
		}
		r.t.Logf("%s: %s", path, st.Mode())
		notes = append(notes, fmt.Sprintf("%s closed to others: %v", filepath.Base(filepath.Dir(path)), st.Mode().Perm()&0o077 == 0))
		if st.Mode().Perm()&0o077 != 0 {
			r.t.Errorf("%s is %s: open to group or others", path, st.Mode())
		}
	}
	if st, _ := os.Stat(socket); st != nil && st.Mode().Perm() != 0o600 {
		r.t.Errorf("socket %s is %s, want 0600", socket, st.Mode().Perm())
	}
	bundle := r.Bundle(id)
	entries, err := os.ReadDir(bundle)
	if err != nil {
		r.t.Fatal(err)
	}
	var modes []string
	for _, e := range entries {
		info, err := os.Lstat(filepath.Join(bundle, e.Name()))
		if err != nil || info.Mode()&os.ModeSymlink != 0 {
			continue
		}
		modes = append(modes, fmt.Sprintf("%s %s", e.Name(), info.Mode()))
		if info.Mode().Perm()&0o022 != 0 && e.Name() != "rootfs" {
			r.t.Errorf("%s/%s is %s: group- or world-writable", bundle, e.Name(), info.Mode())
		}
	}
	r.t.Logf("bundle %s: %v", bundle, modes)
	if r.runtime == harness.RuntimeCustom {
		for _, want := range []string{"address", "options.json", "init.pid", "log.json"} {
			if !slices.ContainsFunc(modes, func(m string) bool { return strings.HasPrefix(m, want+" ") }) {
				r.t.Errorf("no %s in the bundle: %v", want, modes)
			}
		}
	}
	r.killAndDeleteQuiet(id)
	return &observation{Notes: notes}
}

// dialEnv names the socket the helper process dials, and the container it asks State of.
const dialEnv = "CST_SECURITY_DIAL"

// TestSecurityDialHelper is not a test of its own: scenarioOtherUID runs the test binary as
// another uid with CST_SECURITY_DIAL=<socket>|<namespace>|<id>, and this function then dials
// the socket, calls State and prints "OK" or "ERR <error>".
func TestSecurityDialHelper(_ *testing.T) {
	arg := os.Getenv(dialEnv)
	if arg == "" {
		return // only meaningful in the helper process
	}
	f := strings.SplitN(arg, "|", 3)
	conn, err := net.DialTimeout("unix", f[0], 5*time.Second)
	if err != nil {
		fmt.Printf("ERR dial: %v\n", err)
		return
	}
	c := ttrpc.NewClient(conn)
	defer c.Close()
	ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), f[1]), 5*time.Second)
	defer cancel()
	if _, err := taskAPI.NewTTRPCTaskClient(c).State(ctx, &taskAPI.StateRequest{ID: f[2]}); err != nil {
		fmt.Printf("ERR state: %v\n", err)
		return
	}
	fmt.Println("OK")
}

// A client running as another uid is refused by the ttrpc same-user handshake. The socket's
// own path is out of its reach (the dir is closed), so the socket inode is hard-linked into an
// open temp dir and made 0666 for the test (restored to 0600 after): only the handshake stands.
// The same helper run as root must get an answer, so the check is not vacuous.
func scenarioOtherUID(r *row) *observation {
	id, socket := r.shimSocket("uid")
	// In /run (0755, the same tmpfs as the socket dir, so the hard link works); the socket's own
	// dirs (/run/containerd, /run/containerd/s) are closed to other users.
	dir, err := os.MkdirTemp("/run", "cst-sec-")
	if err != nil {
		r.t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil {
		r.t.Fatal(err)
	}
	link := filepath.Join(dir, "shim.sock")
	if err := os.Link(socket, link); err != nil {
		r.t.Fatalf("hard-link the socket: %v", err)
	}
	// The helper is this test binary, copied where uid 65534 can run it.
	self, err := os.Executable()
	if err != nil {
		r.t.Fatal(err)
	}
	bin := filepath.Join(os.TempDir(), fmt.Sprintf("cst-sec-helper-%d", os.Getpid()))
	if err := copyFile(self, bin, 0o755); err != nil {
		r.t.Fatal(err)
	}
	defer os.Remove(bin)
	if err := os.Chmod(socket, 0o666); err != nil {
		r.t.Fatal(err)
	}
	restored := false
	restore := func() {
		if !restored {
			restored = true
			if err := os.Chmod(socket, 0o600); err != nil {
				r.t.Errorf("restore the socket mode: %v", err)
			}
		}
	}
	defer restore()
	run := func(cred *syscall.Credential) string {
		cmd := exec.Command(bin, "-test.run=^TestSecurityDialHelper$")
		cmd.Dir = "/"
		cmd.Env = []string{dialEnv + "=" + link + "|" + r.Namespace + "|" + id}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		out, err := cmd.CombinedOutput()
		if err != nil {
			r.t.Fatalf("helper (%+v): %v: %s", cred, err, out)
		}
		for _, line := range strings.Split(string(out), "\n") {
			if line == "OK" || strings.HasPrefix(line, "ERR ") {
				return line
			}
		}
		r.t.Fatalf("helper printed no result: %s", out)
		return ""
	}
	asRoot := run(nil)
	asNobody := run(&syscall.Credential{Uid: 65534, Gid: 65534})
	r.t.Logf("as root: %s; as uid 65534: %s", asRoot, asNobody)
	if asRoot != "OK" {
		r.t.Errorf("root could not use the linked socket (%s): the check proves nothing", asRoot)
	}
	if asNobody == "OK" {
		r.t.Errorf("uid 65534 was served by the shim")
	}
	if strings.Contains(asNobody, "permission denied") {
		r.t.Errorf("uid 65534 was stopped by file permissions (%s), so the handshake was not tested", asNobody)
	}
	restore()
	r.killAndDeleteQuiet(id)
	return &observation{Notes: []string{"root served: " + fmt.Sprint(asRoot == "OK"), "uid 65534 served: " + fmt.Sprint(asNobody == "OK")}}
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// dirState is a listing of a directory tree: path → mode, size and mtime.
func dirState(root string) map[string]string {
	out := map[string]string{}
	_ = filepath.Walk(root, func(path string, info os.FileInfo, err error) error {
		if err != nil {
			return nil //nolint:nilerr // a vanished entry shows as a difference anyway
		}
		if info.IsDir() && path != root && filepath.Base(path) == "rootfs" {
			return filepath.SkipDir
		}
		out[path] = fmt.Sprintf("%s %d %d", info.Mode(), info.Size(), info.ModTime().UnixNano())
		return nil
	})
	return out
}

// Ids, exec ids and ids inside paths that climb out of their dir, sent straight to the shim:
// every call fails, and nothing changes in the canary dirs planted next to the bundle and next
// to the runc state dir, nor in the other state dirs.
func scenarioTraversal(r *row) *observation {
	id, _ := r.shimSocket("trav")
	shim := shimClient(r.t, r.Daemon, id)
	ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), r.Namespace), time.Minute)
	defer cancel()
	bundle := r.Bundle(id)
	stateNS := filepath.Dir(bundle)
	runcNS := filepath.Dir(runcState(r.Daemon, id))
	canaries := []string{filepath.Join(stateNS, "canary-"+r.short), filepath.Join(runcNS, "canary-"+r.short)}
	for _, c := range canaries {
		if err := os.MkdirAll(c, 0o700); err != nil {
			r.t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(c, "state.json"), []byte("canary"), 0o600); err != nil {
			r.t.Fatal(err)
		}
		defer os.RemoveAll(c)
	}
	watched := []string{stateNS, runcNS, bundle}
	before := map[string]string{}
	for _, w := range watched {
		for k, v := range dirState(w) {
			before[k] = v
		}
	}
	evil := []string{
		"../canary-" + r.short, "../../canary-" + r.short, "..", "../" + id, "x/../../canary-" + r.short,
		filepath.Join(runcNS, "canary-"+r.short), "canary-" + r.short + "/../../..",
	}
	spec := &anypb.Any{TypeUrl: "types.containerd.io/opencontainers/runtime-spec/1/Process",
		Value: []byte(`{"args":["/bin/true"],"cwd":"/","env":["PATH=/bin"]}`)}
	var calls, refused int
	for _, e := range evil {
		reqs := map[string]func() error{
			"create": func() error {
				_, err := shim.Create(ctx, &taskAPI.CreateTaskRequest{ID: e, Bundle: filepath.Join(bundle, "..", "canary-"+r.short)})
				return err
			},
			"state":  func() error { _, err := shim.State(ctx, &taskAPI.StateRequest{ID: e}); return err },
			"delete": func() error { _, err := shim.Delete(ctx, &taskAPI.DeleteRequest{ID: e}); return err },
			"kill":   func() error { _, err := shim.Kill(ctx, &taskAPI.KillRequest{ID: e, Signal: 9}); return err },
			"pids":   func() error { _, err := shim.Pids(ctx, &taskAPI.PidsRequest{ID: e}); return err },
			"checkpoint": func() error {
				_, err := shim.Checkpoint(ctx, &taskAPI.CheckpointTaskRequest{ID: e, Path: r.t.TempDir()})
				return err
			},
			"exec": func() error {
				_, err := shim.Exec(ctx, &taskAPI.ExecProcessRequest{ID: id, ExecID: e, Spec: spec})
				return err
			},
			"delete exec": func() error { _, err := shim.Delete(ctx, &taskAPI.DeleteRequest{ID: id, ExecID: e}); return err },
			"kill exec":   func() error { _, err := shim.Kill(ctx, &taskAPI.KillRequest{ID: id, ExecID: e, Signal: 9}); return err },
			"wait exec": func() error {
				wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
				defer wcancel()
				_, err := shim.Wait(wctx, &taskAPI.WaitRequest{ID: id, ExecID: e})
				return err
			},
		}
		for name, call := range reqs {
			calls++
			err := errgrpc.ToNative(call())
			if err == nil {
				if r.runtime == harness.RuntimeRunc {
					r.t.Logf("reference deviation: %s with id %q succeeded", name, e)
				} else {
					r.t.Errorf("%s with id %q succeeded", name, e)
				}
				continue
			}
			refused++
			if c := class(err); r.runtime == harness.RuntimeCustom && c != "InvalidArgument" && c != "NotFound" && c != "NotImplemented" {
				r.t.Errorf("%s with id %q: %v (%s), want InvalidArgument or NotFound (NotImplemented for a call not implemented)", name, e, err, c)
			}
		}
	}
	after := map[string]string{}
	for _, w := range watched {
		for k, v := range dirState(w) {
			after[k] = v
		}
	}
	var changed []string
	for k, v := range before {
		if after[k] != v && !strings.HasSuffix(k, "/log.json") && !strings.HasSuffix(k, "/log") {
			changed = append(changed, fmt.Sprintf("%s: %q -> %q", k, v, after[k]))
		}
	}
	for k := range after {
		if _, ok := before[k]; !ok {
			changed = append(changed, "new "+k)
		}
	}
	slices.Sort(changed)
	switch {
	case len(changed) > 0 && r.runtime == harness.RuntimeRunc:
		r.t.Logf("reference deviation: traversal requests changed the state dirs:\n  %s", strings.Join(changed, "\n  "))
	case len(changed) > 0:
		r.t.Errorf("traversal requests changed the state dirs:\n  %s", strings.Join(changed, "\n  "))
	}
	for _, c := range canaries {
		if b, err := os.ReadFile(filepath.Join(c, "state.json")); err != nil || string(b) != "canary" {
			r.t.Errorf("canary %s touched: %q, %v", c, b, err)
		}
	}
	if st, err := shim.State(ctx, &taskAPI.StateRequest{ID: id}); err != nil || st.Pid == 0 {
		r.t.Errorf("the shim no longer serves %s: %v", id, err)
	}
	r.t.Logf("%d traversal requests, %d refused", calls, refused)
	r.killAndDeleteQuiet(id)
	return &observation{Notes: []string{fmt.Sprintf("%d of %d traversal requests refused", refused, calls)}}
}
