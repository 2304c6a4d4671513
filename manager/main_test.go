//go:build linux

package manager

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/containerd/v2/pkg/sys/reaper"
	runc "github.com/containerd/go-runc"
	"github.com/containerd/ttrpc"
	"golang.org/x/sys/unix"
)

// testRoleEnv makes the test binary play the shim binary: Main for start, delete, -info and
// -v, and a fake server (serving the inherited fd 3) when invoked without an action.
const testRoleEnv = "MANAGER_TEST_ROLE_SHIM"

// testSocketRootEnv moves the default socket root of a test binary playing the shim.
const testSocketRootEnv = "MANAGER_TEST_SOCKET_ROOT"

// testRuntime is the runtime type the test binary claims to be.
const testRuntime = "io.containerd.custom.v1"

// fakeServerLifetime bounds how long a fake server outlives a test that forgot to kill it.
const fakeServerLifetime = 2 * time.Minute

func TestMain(m *testing.M) {
	if os.Getenv(testRoleEnv) != "" {
		actAsShim()
		return
	}
	os.Exit(m.Run())
}

func actAsShim() {
	f, err := parseFlags(os.Args[1:])
	if err == nil && f.action == "" && !f.info && !f.version {
		fakeServer(f)
		return
	}
	if root := os.Getenv(testSocketRootEnv); root != "" {
		defaultSocketRoot = root
	}
	runc.Monitor = reaper.Default
	Main(context.Background(), testRuntime)
}

// testServerVersionEnv is the Version a fake server answers the start action's probe (Connect
// without an id) with: "closing" plays a server that is shutting down.
const testServerVersionEnv = "MANAGER_TEST_SERVER_VERSION"

// fakeServer records its pid and arguments in its working directory, then serves the start
// action's probe (ttrpc Task.Connect) on fd 3 until killed.
func fakeServer(f *flags) {
	l, err := net.FileListener(os.NewFile(3, "socket"))
	if err != nil {
		os.Exit(3)
	}
	record := fmt.Sprintf("%d\n%s\n%s\n%s\n%v\n%s\n", os.Getpid(), f.id, f.namespace, f.address, f.debug,
		os.Getenv(ttrpcAddressEnv))
	// Write then rename, so a reader polling for the file never sees it half written.
	if os.WriteFile("server.record.tmp", []byte(record), 0o600) != nil || os.Rename("server.record.tmp", "server.record") != nil {
		os.Exit(4)
	}
	time.AfterFunc(fakeServerLifetime, func() { os.Exit(0) })
	srv, err := ttrpc.NewServer()
	if err != nil {
		os.Exit(5)
	}
	version := os.Getenv(testServerVersionEnv)
	srv.RegisterService("containerd.task.v3.Task", &ttrpc.ServiceDesc{Methods: map[string]ttrpc.Method{
		"Connect": func(context.Context, func(any) error) (any, error) {
			return &taskAPI.ConnectResponse{ShimPid: uint32(os.Getpid()), Version: version}, nil
		},
	}})
	_ = srv.Serve(context.Background(), l)
	os.Exit(0)
}

// serverRecord is what a fake server wrote about itself.
type serverRecord struct {
	pid                                  int
	id, namespace, address, debug, ttrpc string
}

func readServerRecord(t *testing.T, bundle string) serverRecord {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(bundle, "server.record"))
	if err != nil {
		t.Fatalf("fake server record: %v", err)
	}
	var r serverRecord
	lines := bytes.Split(b, []byte("\n"))
	if len(lines) < 6 {
		t.Fatalf("short fake server record %q", b)
	}
	r.pid, _ = strconv.Atoi(string(lines[0]))
	r.id, r.namespace, r.address, r.debug, r.ttrpc = string(lines[1]), string(lines[2]), string(lines[3]),
		string(lines[4]), string(lines[5])
	return r
}

// waitServerRecord waits until the server forked for bundle has written its record (it does so
// right after starting) and registers its kill as a cleanup.
func waitServerRecord(t *testing.T, bundle string) serverRecord {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(bundle, "server.record")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("fake server did not start")
		}
		time.Sleep(5 * time.Millisecond) // polling another process's file: no channel to wait on
	}
	r := readServerRecord(t, bundle)
	t.Cleanup(func() { killAndWait(t, r.pid) })
	return r
}

// killAndWait SIGKILLs pid and waits, through a pidfd, until it has exited.
func killAndWait(t *testing.T, pid int) {
	t.Helper()
	fd, err := unix.PidfdOpen(pid, 0)
	if errors.Is(err, unix.ESRCH) {
		return
	}
	if err != nil {
		t.Fatalf("pidfd_open %d: %v", pid, err)
	}
	defer unix.Close(fd)
	_ = unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, 10_000)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil || n == 0 {
			t.Fatalf("wait for pid %d to exit: n=%d err=%v", pid, n, err)
		}
		return
	}
}

// newBundle makes a bundle directory whose config.json carries annotations.
func newBundle(t *testing.T, annotations map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	writeSpec(t, dir, annotations)
	return dir
}

func writeSpec(t *testing.T, bundle string, annotations map[string]string) {
	t.Helper()
	b := []byte(`{"ociVersion":"1.2.0","annotations":{`)
	first := true
	for k, v := range annotations {
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, []byte(strconv.Quote(k)+":"+strconv.Quote(v))...)
	}
	b = append(b, "}}"...)
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// shortSocketRoot returns a fresh, not yet existing, socket root short enough for sun_path and
// makes it the default root for the test.
func shortSocketRoot(t *testing.T) string {
	t.Helper()
	parent, err := os.MkdirTemp("", "shs") //nolint:usetesting // t.TempDir's path, named after the test, can pass sun_path's 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(parent) })
	root := filepath.Join(parent, "s")
	old := defaultSocketRoot
	defaultSocketRoot = root
	t.Cleanup(func() { defaultSocketRoot = old })
	return root
}

// writeScript writes an executable #!/bin/sh script.
func writeScript(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
}

// runShim runs the test binary as the shim binary in dir with args and stdin.
func runShim(t *testing.T, dir string, stdin []byte, args ...string) (stdout, stderr []byte, code int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), testRoleEnv+"=1")
	cmd.Stdin = bytes.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("run shim %v: %v", args, err)
	}
	return out.Bytes(), errb.Bytes(), cmd.ProcessState.ExitCode()
}
