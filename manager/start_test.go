//go:build linux

package manager

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bootstrap "github.com/containerd/containerd/api/runtime/bootstrap/v1"
	"github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/containerd/v2/pkg/shim"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	ocibundle "github.com/custom-shim/containerd-shim-custom-v1/bundle"
)

const (
	testGRPC  = "/run/containerd/containerd.sock"
	testTTRPC = "/run/containerd/containerd.sock.ttrpc"
)

// legacyStart runs the legacy start in-process, in bundle, as containerd ≤ 2.2 would invoke it,
// and returns stdout. The forked server is the test binary playing a fake server.
func legacyStart(t *testing.T, bundle, id string, stdin []byte) (string, error) {
	t.Helper()
	t.Setenv(testRoleEnv, "1")
	t.Setenv(ttrpcAddressEnv, testTTRPC)
	t.Chdir(bundle)
	f := &flags{namespace: "testns", id: id, address: testGRPC, action: "start"}
	var out bytes.Buffer
	err := runStart(context.Background(), f, bytes.NewReader(stdin), &out)
	return out.String(), err
}

func checkAddressFile(t *testing.T, bundle, addr string) {
	t.Helper()
	got, err := shim.ReadAddress(filepath.Join(bundle, addressFile))
	if err != nil || got != addr {
		t.Fatalf("address file = %q, %v; want %q", got, err, addr)
	}
}

func TestStartLegacyForksServer(t *testing.T) {
	root := shortSocketRoot(t)
	bundle := newBundle(t, nil)
	opts, _ := anypb.New(&options.Options{BinaryName: "/opt/runc"})
	addr, err := legacyStart(t, bundle, "c1", mustMarshal(t, opts))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(addr, "unix://"+root+"/") || strings.ContainsAny(addr, "\n ") {
		t.Fatalf("reply %q is not a plain address under %s", addr, root)
	}
	srv := waitServerRecord(t, bundle)
	if !strings.HasPrefix(srv.id, "c1@") || srv.namespace != "testns" || srv.address != testGRPC || srv.debug != "false" || srv.ttrpc != testTTRPC {
		t.Fatalf("server = %+v", srv)
	}
	checkAddressFile(t, bundle, addr)
	if !shim.CanConnect(addr) {
		t.Fatal("socket does not answer: the start process unlinked it or the server did not inherit it")
	}
	checkMode(t, strings.TrimPrefix(addr, "unix://"), 0o600)
	checkMode(t, root, 0o700|os.ModeDir)
}

func checkMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode() & (os.ModePerm | os.ModeDir); got != want {
		t.Fatalf("%s mode = %v, want %v", path, got, want)
	}
}

// TestStartReusesGroupServer: a second container of the same pod joins the pod's server, fast
// and without forking.
func TestStartReusesGroupServer(t *testing.T) {
	shortSocketRoot(t)
	pod := map[string]string{ocibundle.SandboxIDAnnotation: "pod1"}
	b1, b2 := newBundle(t, pod), newBundle(t, pod)
	addr1, err := legacyStart(t, b1, "pause", nil)
	if err != nil {
		t.Fatal(err)
	}
	if srv := waitServerRecord(t, b1); !strings.HasPrefix(srv.id, "pod1@") {
		t.Fatalf("server -id = %q, want the group id and the start's pid", srv.id)
	}
	began := time.Now()
	addr2, err := legacyStart(t, b2, "app", nil)
	if took := time.Since(began); took > 100*time.Millisecond {
		t.Errorf("joining the group took %v", took)
	}
	if err != nil || addr2 != addr1 {
		t.Fatalf("second start = %q, %v; want %q", addr2, err, addr1)
	}
	checkAddressFile(t, b2, addr1)
	if _, err := os.Stat(filepath.Join(b2, "server.record")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a second server was forked (%v)", err)
	}
}

// TestStartWaitsForClosingServer: the group's server is shutting down (a container id run again
// right after its last task was deleted): start waits for it to exit, then starts a new one on
// the same socket, instead of joining a server whose exit removes that socket.
func TestStartWaitsForClosingServer(t *testing.T) {
	shortSocketRoot(t)
	pod := map[string]string{ocibundle.GroupAnnotation: "g"}
	b1, b2 := newBundle(t, pod), newBundle(t, pod)
	t.Setenv(testServerVersionEnv, "closing")
	addr1, err := legacyStart(t, b1, "c1", nil)
	if err != nil {
		t.Fatal(err)
	}
	old := waitServerRecord(t, b1).pid
	t.Setenv(testServerVersionEnv, "")
	go func() {
		time.Sleep(300 * time.Millisecond)
		_ = unix.Kill(old, unix.SIGKILL) // the closing server exits
	}()
	began := time.Now()
	addr2, err := legacyStart(t, b2, "c2", nil)
	if err != nil || addr2 != addr1 {
		t.Fatalf("start beside a closing server = %q, %v; want %q", addr2, err, addr1)
	}
	if took := time.Since(began); took < 250*time.Millisecond {
		t.Fatalf("start returned after %v, before the closing server exited", took)
	}
	if srv := waitServerRecord(t, b2); srv.pid == old {
		t.Fatal("joined the closing server")
	}
	if !shim.CanConnect(addr2) {
		t.Fatal("new server does not answer")
	}
}

// TestStartReplacesStaleSocket: the group's server was SIGKILLed and left its socket behind.
func TestStartReplacesStaleSocket(t *testing.T) {
	shortSocketRoot(t)
	pod := map[string]string{ocibundle.GroupAnnotation: "g"}
	b1, b2 := newBundle(t, pod), newBundle(t, pod)
	addr1, err := legacyStart(t, b1, "c1", nil)
	if err != nil {
		t.Fatal(err)
	}
	killAndWait(t, waitServerRecord(t, b1).pid)
	addr2, err := legacyStart(t, b2, "c2", nil)
	if err != nil || addr2 != addr1 {
		t.Fatalf("restart = %q, %v; want %q", addr2, err, addr1)
	}
	waitServerRecord(t, b2)
	if !shim.CanConnect(addr2) {
		t.Fatal("new server does not answer")
	}
}

func TestStartFailureCleansUp(t *testing.T) {
	root := shortSocketRoot(t)
	bundle := newBundle(t, nil)
	opts, _ := anypb.New(&options.Options{ShimCgroup: "/manager-test-no-such-cgroup"})
	if _, err := legacyStart(t, bundle, "c1", mustMarshal(t, opts)); err == nil || !strings.Contains(err.Error(), "cgroup") {
		t.Fatalf("err = %v, want a shim cgroup error", err)
	}
	if ents, _ := os.ReadDir(root); len(ents) != 0 {
		t.Fatalf("socket left behind: %v", ents)
	}
	if _, err := os.Stat(filepath.Join(bundle, addressFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("address file written on failure (%v)", err)
	}
}

// TestStartBootstrapProtocol runs start as containerd ≥ 2.3 does: flags plus BootstrapParams
// on stdin, a BootstrapResult on stdout, and nothing else on stdout or stderr.
func TestStartBootstrapProtocol(t *testing.T) {
	parent, err := os.MkdirTemp("", "shs") //nolint:usetesting // t.TempDir's path, named after the test, can pass sun_path's 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(parent) })
	socketDir := filepath.Join(parent, "s")
	bundle := newBundle(t, nil)
	opts, _ := anypb.New(&options.Options{Root: "/run/x"})
	params := &bootstrap.BootstrapParams{InstanceID: "c1", Namespace: "k8s.io", LogLevel: bootstrap.LogLevel_LOG_LEVEL_DEBUG,
		ContainerdGrpcAddress: testGRPC, ContainerdTtrpcAddress: "/custom/ttrpc.sock", SocketDir: &socketDir,
		Extensions: []*bootstrap.Extension{{Value: opts}}}
	stdout, stderr, code := runShim(t, bundle, mustMarshal(t, params), "-namespace", "k8s.io", "-address", testGRPC,
		"-publish-binary", "/usr/bin/containerd", "-id", "c1", "-debug", "start")
	if code != 0 || len(stderr) != 0 {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	var res bootstrap.BootstrapResult
	if err := proto.Unmarshal(stdout, &res); err != nil {
		t.Fatal(err)
	}
	if res.GetVersion() != 3 || res.GetProtocol() != "ttrpc" || !strings.HasPrefix(res.GetAddress(), "unix://"+socketDir+"/") {
		t.Fatalf("result = %v", &res)
	}
	srv := waitServerRecord(t, bundle)
	if srv.debug != "true" || srv.ttrpc != "/custom/ttrpc.sock" || srv.namespace != "k8s.io" {
		t.Fatalf("server = %+v", srv)
	}
	if link, err := os.Readlink(filepath.Join(bundle, socketDirLink)); err != nil || link != socketDir {
		t.Fatalf("socket dir link = %q, %v", link, err)
	}
	checkAddressFile(t, bundle, res.GetAddress())
}

// TestStartLegacyViaMain: containerd ≤ 2.2 reads stdout and stderr combined, so both together
// must be exactly the address.
func TestStartLegacyViaMain(t *testing.T) {
	root := shortSocketRoot(t)
	t.Setenv(testSocketRootEnv, root)
	bundle := newBundle(t, nil)
	stdout, stderr, code := runShim(t, bundle, nil, "-namespace", "default", "-address", testGRPC,
		"-publish-binary", "/usr/bin/containerd", "-id", "c1", "start")
	if code != 0 || len(stderr) != 0 || !strings.HasPrefix(string(stdout), "unix://"+root+"/") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	waitServerRecord(t, bundle)
	checkAddressFile(t, bundle, string(stdout))
}

func TestStartMismatchedBootstrap(t *testing.T) {
	params := &bootstrap.BootstrapParams{InstanceID: "theirs", Namespace: "default", ContainerdTtrpcAddress: testTTRPC}
	stdout, stderr, code := runShim(t, newBundle(t, nil), mustMarshal(t, params), "-namespace", "default",
		"-address", testGRPC, "-id", "ours", "start")
	if code == 0 || len(stdout) != 0 || !strings.Contains(string(stderr), `"theirs"`) || !strings.Contains(string(stderr), `"ours"`) {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

func TestServerEnv(t *testing.T) {
	env := serverEnv([]string{"A=1", "TTRPC_ADDRESS=/old"}, &startConfig{ttrpcAddress: "/new", grpcAddress: "/g"})
	want := "A=1 TTRPC_ADDRESS=/new GRPC_ADDRESS=/g CONTAINERD_SHIM_CUSTOM_RUNTIME_GOMAXPROCS= GOMAXPROCS=1"
	if got := strings.Join(env, " "); got != want {
		t.Fatalf("env = %q, want %q", got, want)
	}
}
