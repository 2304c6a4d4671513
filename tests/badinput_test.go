//go:build integration && linux

package tests

// Malformed requests sent straight to the shim's ttrpc socket, past containerd's own checks
// (bad input, docs/reliability.md): each must get the right errdefs class, never a panic or a
// hang, and the shim must serve a valid request afterwards.

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"

	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/containerd/api/types"
	"github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/containerd/ttrpc"
	"github.com/containerd/typeurl/v2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/custom-shim/containerd-shim-custom-v1/tests/harness"
)

// badRequest is one malformed call and the errdefs class it must get.
type badRequest struct {
	name string
	want string // class(err)
	call func(context.Context, taskAPI.TTRPCTaskService) error
}

// shimClient connects to the ttrpc socket of the shim serving container id.
func shimClient(t *testing.T, d *harness.Daemon, id string) taskAPI.TTRPCTaskService {
	t.Helper()
	addr, err := d.ShimAddress(id)
	if err != nil {
		t.Fatalf("shim address of %s: %v", id, err)
	}
	conn, err := net.Dial("unix", strings.TrimPrefix(addr, "unix://"))
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	c := ttrpc.NewClient(conn)
	t.Cleanup(func() { c.Close() })
	return taskAPI.NewTTRPCTaskClient(c)
}

// badBundle makes a bundle dir holding config (written as is) and returns its path.
func badBundle(t *testing.T, config string) string {
	t.Helper()
	dir := t.TempDir()
	if config != "" {
		if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(config), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestBadInput(t *testing.T) {
	paths := harness.DefaultPaths(t)
	spec := harness.Daemons(paths)[0] // the pinned containerd: the shim is called directly anyway
	harness.Require(t, harness.Executable(paths.Shim), "%s is not built (run `make build`)", paths.Shim)
	d := harness.Start(t, spec, paths)
	r := newRow(t, d, harness.RuntimeCustom)
	live := r.id("live")
	r.expect(r.ctr(nil, r.runArgs("-d", "--null-io", harness.ImageBusybox.Ref, live, "sleep", "1000")...), 0, "-")
	r.WaitTask(t, live, "RUNNING", eventTimeout)
	shim := shimClient(t, d, live)
	ctx := namespaces.WithNamespace(context.Background(), d.Namespace)

	liveBundle := d.Bundle(live)
	validSpec, err := os.ReadFile(filepath.Join(liveBundle, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	procSpec := func(mut func(*specs.Process)) *anypb.Any {
		var s specs.Spec
		if err := json.Unmarshal(validSpec, &s); err != nil {
			t.Fatal(err)
		}
		p := *s.Process
		p.Args = []string{"true"}
		if mut != nil {
			mut(&p)
		}
		b, _ := json.Marshal(p)
		return &anypb.Any{TypeUrl: "types.containerd.io/opencontainers/runtime-spec/1/Process", Value: b}
	}
	create := func(id, bundle string, mut func(*taskAPI.CreateTaskRequest)) func(context.Context, taskAPI.TTRPCTaskService) error {
		return func(ctx context.Context, s taskAPI.TTRPCTaskService) error {
			req := &taskAPI.CreateTaskRequest{ID: id, Bundle: bundle}
			if mut != nil {
				mut(req)
			}
			_, err := s.Create(ctx, req)
			return err
		}
	}
	runcOpts := func(o *options.Options) *anypb.Any {
		a, err := typeurl.MarshalAnyToProto(o)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	okBundle := badBundle(t, string(validSpec))

	// rowT is the subtest of the row being run: a row that sets up a container of its own fails
	// it when the setup fails (an error it returned would be judged as the row's answer).
	var rowT *testing.T
	// startC1 runs c1 beside the live container, in its shim: the live container's rootfs (read
	// only) and spec, a cgroup of its own, the OCI runtime binary (runc if ""). A row that
	// starts it removes it (stopC1) before it returns; should the row fail first, its cleanup does.
	startC1 := func(ctx context.Context, s taskAPI.TTRPCTaskService, binary string) {
		t := rowT
		t.Helper()
		var sp specs.Spec
		if err := json.Unmarshal(validSpec, &sp); err != nil {
			t.Fatal(err)
		}
		sp.Root = &specs.Root{Path: filepath.Join(liveBundle, "rootfs"), Readonly: true}
		if sp.Linux != nil && sp.Linux.CgroupsPath != "" {
			sp.Linux.CgroupsPath = path.Join(path.Dir(sp.Linux.CgroupsPath), live+"-c1")
		}
		b, err := json.Marshal(sp)
		if err != nil {
			t.Fatal(err)
		}
		req := &taskAPI.CreateTaskRequest{ID: "c1", Bundle: badBundle(t, string(b))}
		if binary != "" {
			req.Options = runcOpts(&options.Options{BinaryName: binary})
		}
		if _, err := s.Create(ctx, req); err != nil {
			t.Fatalf("setup: create c1: %v", err)
		}
		t.Cleanup(func() {
			_, _ = s.Kill(ctx, &taskAPI.KillRequest{ID: "c1", Signal: 9})
			_, _ = s.Wait(ctx, &taskAPI.WaitRequest{ID: "c1"})
			_, _ = s.Delete(ctx, &taskAPI.DeleteRequest{ID: "c1"})
		})
		if _, err := s.Start(ctx, &taskAPI.StartRequest{ID: "c1"}); err != nil {
			t.Fatalf("setup: start c1: %v", err)
		}
	}
	stopC1 := func(ctx context.Context, s taskAPI.TTRPCTaskService) {
		t := rowT
		t.Helper()
		if _, err := s.Kill(ctx, &taskAPI.KillRequest{ID: "c1", Signal: 9}); err != nil {
			t.Fatalf("kill c1: %v", err)
		}
		if w, err := s.Wait(ctx, &taskAPI.WaitRequest{ID: "c1"}); err != nil || w.ExitStatus != 137 {
			t.Fatalf("wait c1: %v, %v; want status 137", w, err)
		}
		if _, err := s.Delete(ctx, &taskAPI.DeleteRequest{ID: "c1"}); err != nil {
			t.Fatalf("delete c1: %v", err)
		}
	}
	// The pinned runc with no criu on its PATH (runc runs criu from PATH).
	noCriu := runtimeWrapper(t, paths.Runc(), "runc-without-criu", "PATH=/nonexistent; export PATH\n")

	table := []badRequest{
		{"create: empty id", "InvalidArgument", create("", okBundle, nil)},
		{"create: id too long", "InvalidArgument", create(strings.Repeat("a", 200), okBundle, nil)},
		{"create: id with slash", "InvalidArgument", create("a/b", okBundle, nil)},
		{"create: id ..", "InvalidArgument", create("..", okBundle, nil)},
		{"create: id with NUL", "InvalidArgument", create("a\x00b", okBundle, nil)},
		{"create: missing bundle", "InvalidArgument", create("c1", "/nonexistent/bundle", nil)},
		{"create: relative bundle", "InvalidArgument", create("c1", "relative/bundle", nil)},
		{"create: bundle is a file", "InvalidArgument", create("c1", filepath.Join(liveBundle, "config.json"), nil)},
		{"create: no config.json", "InvalidArgument", create("c1", badBundle(t, ""), nil)},
		{"create: malformed config.json", "InvalidArgument", create("c1", badBundle(t, "{not json"), nil)},
		{"create: config.json without process", "InvalidArgument", create("c1", badBundle(t, `{"ociVersion":"1.0.2"}`), nil)},
		{"create: bad rootfs mount", "InvalidArgument", create("c1", okBundle, func(r *taskAPI.CreateTaskRequest) {
			r.Rootfs = []*types.Mount{{Type: "no-such-fs", Source: "none"}}
		})},
		{"create: stdout in a missing dir", "NotFound", create("c1", okBundle, func(r *taskAPI.CreateTaskRequest) {
			r.Stdout = "/nonexistent/dir/stdout"
		})},
		{"create: unknown stdio scheme", "InvalidArgument", create("c1", okBundle, func(r *taskAPI.CreateTaskRequest) {
			r.Stdout = "gopher://example/stdout"
		})},
		{"create: relative file:// path", "InvalidArgument", create("c1", okBundle, func(r *taskAPI.CreateTaskRequest) {
			r.Stdout = "file://relative/log"
		})},
		{"create: relative binary:// path", "InvalidArgument", create("c1", okBundle, func(r *taskAPI.CreateTaskRequest) {
			r.Stdout = "binary://relative/logger"
		})},
		{"create: unknown options type", "InvalidArgument", create("c1", okBundle, func(r *taskAPI.CreateTaskRequest) {
			r.Options = &anypb.Any{TypeUrl: "example.com/NoSuchOptions", Value: []byte("x")}
		})},
		{"create: corrupt runc options", "InvalidArgument", create("c1", okBundle, func(r *taskAPI.CreateTaskRequest) {
			r.Options = &anypb.Any{TypeUrl: runcOpts(&options.Options{}).TypeUrl, Value: []byte{0xff, 0xff, 0xff}}
		})},
		{"create: missing OCI runtime binary", "", create("c1", okBundle, func(r *taskAPI.CreateTaskRequest) {
			r.Options = runcOpts(&options.Options{BinaryName: "/nonexistent/runc"})
		})},
		{"create: duplicate id", "AlreadyExists", create(live, liveBundle, nil)},
		{"start: unknown container", "NotFound", func(ctx context.Context, s taskAPI.TTRPCTaskService) error {
			_, err := s.Start(ctx, &taskAPI.StartRequest{ID: "nope"})
			return err
		}},
		{"start: running container again", "FailedPrecondition", func(ctx context.Context, s taskAPI.TTRPCTaskService) error {
			_, err := s.Start(ctx, &taskAPI.StartRequest{ID: live})
			return err
		}},
		{"start: unknown exec", "NotFound", func(ctx context.Context, s taskAPI.TTRPCTaskService) error {
			_, err := s.Start(ctx, &taskAPI.StartRequest{ID: live, ExecID: "nope"})
			return err
		}},
		{"delete: unknown container", "NotFound", func(ctx context.Context, s taskAPI.TTRPCTaskService) error {
			_, err := s.Delete(ctx, &taskAPI.DeleteRequest{ID: "nope"})
			return err
		}},
		{"delete: container deleted already", "NotFound", func(ctx context.Context, s taskAPI.TTRPCTaskService) error {
			startC1(ctx, s, "")
			stopC1(ctx, s)
			_, err := s.Delete(ctx, &taskAPI.DeleteRequest{ID: "c1"})
			return err
		}},
		{"delete: running container", "FailedPrecondition", func(ctx context.Context, s taskAPI.TTRPCTaskService) error {
			_, err := s.Delete(ctx, &taskAPI.DeleteRequest{ID: live})
			return err
		}},
		{"exec: no spec", "InvalidArgument", func(ctx context.Context, s taskAPI.TTRPCTaskService) error {
			_, err := s.Exec(ctx, &taskAPI.ExecProcessRequest{ID: live, ExecID: "e1"})
			return err
		}},
		{"exec: spec not JSON", "InvalidArgument", func(ctx context.Context, s taskAPI.TTRPCTaskService) error {
			_, err := s.Exec(ctx, &taskAPI.ExecProcessRequest{ID: live, ExecID: "e1", Spec: &anypb.Any{TypeUrl: "x", Value: []byte("{")}})
			return err
		}},
		{"exec: spec without args", "InvalidArgument", func(ctx context.Context, s taskAPI.TTRPCTaskService) error {
			_, err := s.Exec(ctx, &taskAPI.ExecProcessRequest{ID: live, ExecID: "e1", Spec: procSpec(func(p *specs.Process) { p.Args = nil })})
			return err
		}},
		{"exec: spec with relative cwd", "InvalidArgument", func(ctx context.Context, s taskAPI.TTRPCTaskService) error {
			_, err := s.Exec(ctx, &taskAPI.ExecProcessRequest{ID: live, ExecID: "e1", Spec: procSpec(func(p *specs.Process) { p.Cwd = "tmp" })})
			return err
		}},
		{"exec: empty exec id", "InvalidArgument", func(ctx context.Context, s taskAPI.TTRPCTaskService) error {
			_, err := s.Exec(ctx, &taskAPI.ExecProcessRequest{ID: live, Spec: procSpec(nil)})
			return err
		}},
		{"exec: exec id with ../", "InvalidArgument", func(ctx context.Context, s taskAPI.TTRPCTaskService) error {
			_, err := s.Exec(ctx, &taskAPI.ExecProcessRequest{ID: live, ExecID: "../../etc/x", Spec: procSpec(nil)})
			return err
		}},
		{"exec: unknown container", "NotFound", func(ctx context.Context, s taskAPI.TTRPCTaskService) error {
			_, err := s.Exec(ctx, &taskAPI.ExecProcessRequest{ID: "nope", ExecID: "e1", Spec: procSpec(nil)})
			return err
		}},
		{"kill: signal 65", "InvalidArgument", func(ctx context.Context, s taskAPI.TTRPCTaskService) error {
			_, err := s.Kill(ctx, &taskAPI.KillRequest{ID: live, Signal: 65})
			return err
		}},
		{"kill: signal 1000", "InvalidArgument", func(ctx context.Context, s taskAPI.TTRPCTaskService) error {
			_, err := s.Kill(ctx, &taskAPI.KillRequest{ID: live, Signal: 1000})
			return err
		}},
		{"kill: unknown container", "NotFound", func(ctx context.Context, s taskAPI.TTRPCTaskService) error {
			_, err := s.Kill(ctx, &taskAPI.KillRequest{ID: "nope", Signal: 9})
			return err
		}},
		{"kill: unknown exec", "NotFound", func(ctx context.Context, s taskAPI.TTRPCTaskService) error {
			_, err := s.Kill(ctx, &taskAPI.KillRequest{ID: live, ExecID: "nope", Signal: 9})
			return err
		}},
		{"resize: non-terminal process", "FailedPrecondition", func(ctx context.Context, s taskAPI.TTRPCTaskService) error {
			_, err := s.ResizePty(ctx, &taskAPI.ResizePtyRequest{ID: live, Width: 80, Height: 24})
			return err
		}},
		{"update: no resources", "InvalidArgument", func(ctx context.Context, s taskAPI.TTRPCTaskService) error {
			_, err := s.Update(ctx, &taskAPI.UpdateTaskRequest{ID: live})
			return err
		}},
		{"update: resources not JSON", "InvalidArgument", func(ctx context.Context, s taskAPI.TTRPCTaskService) error {
			_, err := s.Update(ctx, &taskAPI.UpdateTaskRequest{ID: live, Resources: &anypb.Any{TypeUrl: "x", Value: []byte("[")}})
			return err
		}},
		{"update: unknown container", "NotFound", func(ctx context.Context, s taskAPI.TTRPCTaskService) error {
			_, err := s.Update(ctx, &taskAPI.UpdateTaskRequest{ID: "nope", Resources: &anypb.Any{TypeUrl: "x", Value: []byte("{}")}})
			return err
		}},
		{"state: unknown container", "NotFound", func(ctx context.Context, s taskAPI.TTRPCTaskService) error {
			_, err := s.State(ctx, &taskAPI.StateRequest{ID: "nope"})
			return err
		}},
		{"wait: unknown exec", "NotFound", func(ctx context.Context, s taskAPI.TTRPCTaskService) error {
			_, err := s.Wait(ctx, &taskAPI.WaitRequest{ID: live, ExecID: "nope"})
			return err
		}},
		{"closeio: unknown container", "NotFound", func(ctx context.Context, s taskAPI.TTRPCTaskService) error {
			_, err := s.CloseIO(ctx, &taskAPI.CloseIORequest{ID: "nope", Stdin: true})
			return err
		}},
		{"pids: unknown container", "NotFound", func(ctx context.Context, s taskAPI.TTRPCTaskService) error {
			_, err := s.Pids(ctx, &taskAPI.PidsRequest{ID: "nope"})
			return err
		}},
		{"stats: unknown container", "NotFound", func(ctx context.Context, s taskAPI.TTRPCTaskService) error {
			_, err := s.Stats(ctx, &taskAPI.StatsRequest{ID: "nope"})
			return err
		}},
		{"pause: unknown container", "NotFound", func(ctx context.Context, s taskAPI.TTRPCTaskService) error {
			_, err := s.Pause(ctx, &taskAPI.PauseRequest{ID: "nope"})
			return err
		}},
		{"resume: running container", "FailedPrecondition", func(ctx context.Context, s taskAPI.TTRPCTaskService) error {
			_, err := s.Resume(ctx, &taskAPI.ResumeRequest{ID: live})
			return err
		}},
		{"checkpoint: unknown container", "NotFound", func(ctx context.Context, s taskAPI.TTRPCTaskService) error {
			_, err := s.Checkpoint(ctx, &taskAPI.CheckpointTaskRequest{ID: "nope", Path: t.TempDir()})
			return err
		}},
		{"checkpoint: no criu", "FailedPrecondition", func(ctx context.Context, s taskAPI.TTRPCTaskService) error {
			startC1(ctx, s, noCriu)
			_, err := s.Checkpoint(ctx, &taskAPI.CheckpointTaskRequest{ID: "c1", Path: rowT.TempDir()})
			if msg := fmt.Sprint(err); !strings.Contains(msg, "c1") || !strings.Contains(msg, "criu") {
				rowT.Errorf("checkpoint error %q: want one naming c1 and criu", msg)
			}
			// The container runs on, untouched by the failed checkpoint.
			if st, serr := s.State(ctx, &taskAPI.StateRequest{ID: "c1"}); serr != nil || st.Status.String() != "RUNNING" {
				rowT.Errorf("c1 after the failed checkpoint: %v, %v; want RUNNING", st, serr)
			}
			stopC1(ctx, s)
			return err
		}},
	}
	for _, tc := range table {
		t.Run(tc.name, func(t *testing.T) {
			rowT = t
			cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			defer cancel()
			err := errgrpc.ToNative(tc.call(cctx, shim))
			if tc.want == "" {
				// Any class but a panic or a hang; the message must name the container.
				if err == nil || !strings.Contains(err.Error(), "c1") {
					t.Errorf("got %v, want an error naming the container", err)
				}
			} else if got := class(err); got != tc.want {
				t.Errorf("got %s (%v), want %s", got, err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), "panic") {
				t.Errorf("the shim panicked: %v", err)
			}
			t.Logf("%v", err)
			// The shim still serves a valid request, and still has exactly the live container.
			st, err := shim.State(cctx, &taskAPI.StateRequest{ID: live})
			if err != nil || st.Pid == 0 {
				t.Fatalf("after %s, State of %s: %v", tc.name, live, err)
			}
			if _, err := shim.State(cctx, &taskAPI.StateRequest{ID: "c1"}); class(errgrpc.ToNative(err)) != "NotFound" {
				t.Errorf("after %s, a container c1 exists (%v)", tc.name, err)
			}
		})
	}
	r.expect(r.ctr(nil, "tasks", "kill", "-s", "SIGKILL", live), 0, "")
	r.waitExit(live, live, 137)
	r.expect(r.ctr(nil, "tasks", "rm", live), 0, "")
	r.expect(r.ctr(nil, "containers", "rm", live), 0, "")
}
