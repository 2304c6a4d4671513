//go:build linux

package sandbox

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	sandboxAPI "github.com/containerd/containerd/api/runtime/sandbox/v1"
	"github.com/containerd/ttrpc"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/custom-shim/containerd-shim-custom-v1/internal/shimtest"
	"github.com/custom-shim/containerd-shim-custom-v1/lifetime"
	"github.com/custom-shim/containerd-shim-custom-v1/pod"
)

// TestMain reaps children the way pkg/shim does in the shim (SIGCHLD → reaper.Reap): the pods'
// holders are waited for through reaper.Default.
func TestMain(m *testing.M) {
	shimtest.ReapLoop()
	os.Exit(m.Run())
}

// servers numbers the servers of serve, which names its socket after the test and the number.
var servers atomic.Int64

// serve runs the Sandbox service on a ttrpc server with the shim's interceptor (the server's
// life's, on a counting shutdown.Service) and returns a client of it.
func serve(t *testing.T, pods *pod.Set) (sandboxAPI.TTRPCSandboxService, *shimtest.Shutdown) {
	t.Helper()
	sd := &shimtest.Shutdown{}
	life := lifetime.New(sd)
	srv, err := ttrpc.NewServer(ttrpc.WithUnaryServerInterceptor(life.UnaryServerInterceptor()))
	if err != nil {
		t.Fatal(err)
	}
	if err := newService(pods, life).RegisterTTRPC(srv); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", fmt.Sprintf("@%s-%d-%d", strings.ReplaceAll(t.Name(), "/", "-"), os.Getpid(), servers.Add(1)))
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(context.Background(), l)
	conn, err := net.Dial("unix", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	client := ttrpc.NewClient(conn)
	t.Cleanup(func() {
		client.Close()
		srv.Close()
	})
	return sandboxAPI.NewTTRPCSandboxClient(client), sd
}

// hostPodOptions is a PodSandboxConfig that asks for no namespace of the pod's own (host
// network, IPC and PID): creating it needs no privilege (no shm mount); its holder needs only
// its mount namespace.
func hostPodOptions(t *testing.T) *anypb.Any {
	t.Helper()
	node := runtimeapi.NamespaceMode_NODE
	cfg := &runtimeapi.PodSandboxConfig{
		Metadata: &runtimeapi.PodSandboxMetadata{Name: "p", Uid: "u", Namespace: "ns"},
		Linux: &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
			NamespaceOptions: &runtimeapi.NamespaceOption{Network: node, Pid: node, Ipc: node},
		}},
	}
	b, err := proto.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &anypb.Any{TypeUrl: "runtime.v1.PodSandboxConfig", Value: b}
}

// Every RPC on a sandbox the shim does not have, and malformed requests: the classes containerd's
// sandbox controller and the CRI plugin go by.
func TestSandboxErrorClasses(t *testing.T) {
	s, _ := serve(t, pod.NewSet())
	ctx := context.Background()
	bundle := t.TempDir()
	for _, tc := range []struct {
		name string
		want string
		call func() error
	}{
		{"create with an empty id", "InvalidArgument", func() error {
			_, err := s.CreateSandbox(ctx, &sandboxAPI.CreateSandboxRequest{BundlePath: bundle})
			return err
		}},
		{"create with a path for id", "InvalidArgument", func() error {
			_, err := s.CreateSandbox(ctx, &sandboxAPI.CreateSandboxRequest{SandboxID: "../x", BundlePath: bundle})
			return err
		}},
		{"create with options of another type", "InvalidArgument", func() error {
			_, err := s.CreateSandbox(ctx, &sandboxAPI.CreateSandboxRequest{SandboxID: "sb", BundlePath: bundle,
				Options: &anypb.Any{TypeUrl: "containerd.runc.v1.Options"}})
			return err
		}},
		{"create with options that do not parse", "InvalidArgument", func() error {
			_, err := s.CreateSandbox(ctx, &sandboxAPI.CreateSandboxRequest{SandboxID: "sb", BundlePath: bundle,
				Options: &anypb.Any{TypeUrl: "runtime.v1.PodSandboxConfig", Value: []byte{0xff, 0xff, 0xff}}})
			return err
		}},
		{"create with an id of a NUL", "InvalidArgument", func() error {
			_, err := s.CreateSandbox(ctx, &sandboxAPI.CreateSandboxRequest{SandboxID: "a\x00b", BundlePath: bundle, Options: hostPodOptions(t)})
			return err
		}},
		{"create with a netns that is a plain file", "InvalidArgument", func() error {
			_, err := s.CreateSandbox(ctx, &sandboxAPI.CreateSandboxRequest{SandboxID: "sb", BundlePath: bundle,
				NetnsPath: "/etc/hostname", Options: hostPodOptions(t)})
			return err
		}},
		{"create with a netns of another kind", "InvalidArgument", func() error {
			_, err := s.CreateSandbox(ctx, &sandboxAPI.CreateSandboxRequest{SandboxID: "sb", BundlePath: bundle,
				NetnsPath: "/proc/self/ns/uts", Options: hostPodOptions(t)})
			return err
		}},
		{"create and shut down an id with '#' and ':'", "ok", func() error {
			s, _ := serve(t, pod.NewSet()) // a shim of its own: an idle shim ends after the shutdown
			if _, err := s.CreateSandbox(ctx, &sandboxAPI.CreateSandboxRequest{SandboxID: "life#01:x", BundlePath: bundle, Options: hostPodOptions(t)}); err != nil {
				return err
			}
			_, err := s.ShutdownSandbox(ctx, &sandboxAPI.ShutdownSandboxRequest{SandboxID: "life#01:x"})
			return err
		}},
		{"create with a relative bundle", "InvalidArgument", func() error {
			_, err := s.CreateSandbox(ctx, &sandboxAPI.CreateSandboxRequest{SandboxID: "sb", BundlePath: "rel", Options: hostPodOptions(t)})
			return err
		}},
		{"start before create", "FailedPrecondition", func() error {
			_, err := s.StartSandbox(ctx, &sandboxAPI.StartSandboxRequest{SandboxID: "none"})
			return err
		}},
		{"start with an empty id", "InvalidArgument", func() error {
			_, err := s.StartSandbox(ctx, &sandboxAPI.StartSandboxRequest{})
			return err
		}},
		{"platform", "NotFound", func() error {
			_, err := s.Platform(ctx, &sandboxAPI.PlatformRequest{SandboxID: "none"})
			return err
		}},
		{"stop", "NotFound", func() error {
			_, err := s.StopSandbox(ctx, &sandboxAPI.StopSandboxRequest{SandboxID: "none"})
			return err
		}},
		{"wait", "NotFound", func() error {
			_, err := s.WaitSandbox(ctx, &sandboxAPI.WaitSandboxRequest{SandboxID: "none"})
			return err
		}},
		{"status", "NotFound", func() error {
			_, err := s.SandboxStatus(ctx, &sandboxAPI.SandboxStatusRequest{SandboxID: "none"})
			return err
		}},
		{"ping", "NotFound", func() error {
			_, err := s.PingSandbox(ctx, &sandboxAPI.PingRequest{SandboxID: "none"})
			return err
		}},
		{"shutdown", "NotFound", func() error {
			_, err := s.ShutdownSandbox(ctx, &sandboxAPI.ShutdownSandboxRequest{SandboxID: "none"})
			return err
		}},
		{"metrics", "NotFound", func() error {
			_, err := s.SandboxMetrics(ctx, &sandboxAPI.SandboxMetricsRequest{SandboxID: "none"})
			return err
		}},
		{"update", "NotFound", func() error {
			_, err := s.UpdateSandbox(ctx, &sandboxAPI.UpdateSandboxRequest{SandboxID: "none"})
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := shimtest.Class(tc.call()); got != tc.want {
				t.Fatalf("got %s, want %s", got, tc.want)
			}
		})
	}
}

// A pod's whole life over the wire: create (a second create is AlreadyExists), start (twice is
// FailedPrecondition), status Ready with the holder's pid, platform, ping, update; stop (twice:
// idempotent) ends the holder, Wait returns, status NotReady; shutdown leaves nothing and ends
// the shim, which serves nothing else; then NotFound.
func TestSandboxLifecycle(t *testing.T) {
	shimtest.RequireRoot(t) // the holder makes a mount namespace
	pods := pod.NewSet()
	s, sd := serve(t, pods)
	ctx := context.Background()
	bundle := filepath.Join(t.TempDir(), "sb1")
	if err := os.Mkdir(bundle, 0o700); err != nil {
		t.Fatal(err)
	}
	create := &sandboxAPI.CreateSandboxRequest{SandboxID: "sb1", BundlePath: bundle, Options: hostPodOptions(t)}
	if _, err := s.CreateSandbox(ctx, create); err != nil {
		t.Fatalf("create: %v", err)
	}
	for _, again := range []*sandboxAPI.CreateSandboxRequest{create,
		{SandboxID: "sb1", BundlePath: "relative", NetnsPath: "/etc/hostname", Options: &anypb.Any{TypeUrl: "bogus"}}} {
		if _, err := s.CreateSandbox(ctx, again); shimtest.Class(err) != "AlreadyExists" {
			t.Fatalf("second create (%v): %v, want AlreadyExists whatever else is wrong", again, err)
		}
	}
	st, err := s.SandboxStatus(ctx, &sandboxAPI.SandboxStatusRequest{SandboxID: "sb1"})
	if err != nil || st.State != stateNotReady || st.Pid != 0 {
		t.Fatalf("status before start: %v %v", st, err)
	}
	started, err := s.StartSandbox(ctx, &sandboxAPI.StartSandboxRequest{SandboxID: "sb1"})
	if err != nil || started.Pid == 0 || started.CreatedAt == nil {
		t.Fatalf("start: %v %v", started, err)
	}
	if _, err := s.StartSandbox(ctx, &sandboxAPI.StartSandboxRequest{SandboxID: "sb1"}); shimtest.Class(err) != "FailedPrecondition" {
		t.Fatalf("second start: %v, want FailedPrecondition", err)
	}
	st, err = s.SandboxStatus(ctx, &sandboxAPI.SandboxStatusRequest{SandboxID: "sb1", Verbose: true})
	if err != nil || st.State != stateReady || st.Pid != started.Pid || st.Info["pid"] != strconv.Itoa(int(started.Pid)) ||
		st.Info["state"] != stateReady || !strings.Contains(st.Info["info"], `"pid":`+st.Info["pid"]) {
		t.Fatalf("status after start: %v %v", st, err)
	}
	if err := unix.Kill(int(started.Pid), 0); err != nil {
		t.Fatalf("holder %d not running: %v", started.Pid, err)
	}
	if p, err := s.Platform(ctx, &sandboxAPI.PlatformRequest{SandboxID: "sb1"}); err != nil || p.Platform.OS != "linux" {
		t.Fatalf("platform: %v %v", p, err)
	}
	if _, err := s.PingSandbox(ctx, &sandboxAPI.PingRequest{SandboxID: "sb1"}); err != nil {
		t.Fatalf("ping: %v", err)
	}
	if _, err := s.UpdateSandbox(ctx, &sandboxAPI.UpdateSandboxRequest{SandboxID: "sb1"}); err != nil {
		t.Fatalf("update: %v", err)
	}
	waited := make(chan error, 1)
	go func() {
		_, err := s.WaitSandbox(ctx, &sandboxAPI.WaitSandboxRequest{SandboxID: "sb1"})
		waited <- err
	}()
	select {
	case err := <-waited:
		t.Fatalf("wait returned while the sandbox runs: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	for range 2 {
		if _, err := s.StopSandbox(ctx, &sandboxAPI.StopSandboxRequest{SandboxID: "sb1"}); err != nil {
			t.Fatalf("stop: %v", err)
		}
	}
	select {
	case err := <-waited:
		if err != nil {
			t.Fatalf("wait: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("wait did not return after stop")
	}
	if err := unix.Kill(int(started.Pid), 0); err == nil {
		t.Fatalf("holder %d still runs after stop", started.Pid)
	}
	st, err = s.SandboxStatus(ctx, &sandboxAPI.SandboxStatusRequest{SandboxID: "sb1"})
	if err != nil || st.State != stateNotReady || st.ExitedAt == nil {
		t.Fatalf("status after stop: %v %v", st, err)
	}
	if _, err := s.ShutdownSandbox(ctx, &sandboxAPI.ShutdownSandboxRequest{SandboxID: "sb1"}); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	// The shim serves nothing any more: it exits, but only after removeGrace, so that
	// containerd's controller, which follows a caller's ShutdownSandbox with its own, gets the
	// first one's answer.
	if sd.Calls() != 0 {
		t.Fatalf("shutdown of the last pod: the shim's shutdown called at once (%d), want after %v", sd.Calls(), removeGrace)
	}
	if _, err := s.ShutdownSandbox(ctx, &sandboxAPI.ShutdownSandboxRequest{SandboxID: "sb1"}); err != nil {
		t.Fatalf("second shutdown: %v", err)
	}
	for deadline := time.Now().Add(removeGrace + 5*time.Second); sd.Calls() == 0 && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	if sd.Calls() != 1 {
		t.Fatalf("shutdown of the last pod: the shim's shutdown called %d times after the grace, want 1", sd.Calls())
	}
	if _, err := s.SandboxStatus(ctx, &sandboxAPI.SandboxStatusRequest{SandboxID: "sb1"}); shimtest.Class(err) != "NotFound" {
		t.Fatalf("status after shutdown: %v, want NotFound", err)
	}
	if pods.Len() != 0 {
		t.Fatalf("pods left: %d", pods.Len())
	}
}

// graceOver: at once where no pod ever left; after removeGrace counted from the last removal;
// false when its context ends first. (synctest: the clock is the bubble's.)
func TestGraceOver(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &service{}
		if !s.graceOver(t.Context()) {
			t.Fatal("no pod ever removed: not over")
		}
		s.removed.Store(time.Now().UnixNano())
		cancelled, cancel := context.WithCancel(t.Context())
		cancel()
		if s.graceOver(cancelled) {
			t.Fatal("over at once after a removal")
		}
		start := time.Now()
		if !s.graceOver(t.Context()) || time.Since(start) != removeGrace {
			t.Fatalf("over after %v, want %v", time.Since(start), removeGrace)
		}
		if !s.graceOver(t.Context()) {
			t.Fatal("not over after the grace")
		}
	})
}

// The Task service's Shutdown of a container's id (pods.Shutdown of an id the set never had)
// in a shim with no pod ends the shim at once: the grace is only for a pod's ShutdownSandbox.
func TestNoGraceWithoutPod(t *testing.T) {
	pods := pod.NewSet()
	_, sd := serve(t, pods)
	if err := pods.Shutdown(t.Context(), "a-container"); shimtest.Class(err) != "NotFound" {
		t.Fatalf("shutdown of an id the set never had: %v, want NotFound", err)
	}
	if sd.Calls() != 1 {
		t.Fatalf("a shim with no pod: shutdown called %d times at once, want 1", sd.Calls())
	}
}
