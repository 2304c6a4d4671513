//go:build linux

package manager

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	taskapi "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/shim"
	"google.golang.org/protobuf/proto"

	"github.com/custom-shim/containerd-shim-custom-v1/process"
)

// fakeRunc writes a runc stand-in into dir that records its argv in dir/argv and exits with code.
func fakeRunc(t *testing.T, dir, name string, code int) string {
	t.Helper()
	path := filepath.Join(dir, name)
	writeScript(t, path, `echo "$@" > "`+filepath.Join(dir, "argv")+`"`+"\nexit "+strconv.Itoa(code)+"\n")
	return path
}

func readArgv(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "argv"))
	if err != nil {
		t.Fatalf("fake runc was not run: %v", err)
	}
	return strings.TrimSpace(string(b))
}

func stopCtx(bundle string) context.Context {
	ctx := namespaces.WithNamespace(context.Background(), "testns")
	if bundle != "" {
		ctx = context.WithValue(ctx, shim.OptsKey{}, shim.Opts{BundlePath: bundle})
	}
	return ctx
}

func TestStopUsesRecordedRuntime(t *testing.T) {
	bundle, bin, root := t.TempDir(), t.TempDir(), t.TempDir()
	runcPath := fakeRunc(t, bin, "my-runc", 0)
	if err := process.WriteOptions(bundle, &process.Options{BinaryName: runcPath, Root: root}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bundle, process.InitPidFile), []byte("4242"), 0o600); err != nil {
		t.Fatal(err)
	}
	before := time.Now()
	st, err := New(testRuntime).Stop(stopCtx(bundle), "c1")
	if err != nil {
		t.Fatal(err)
	}
	if st.Pid != 4242 || st.ExitStatus != 137 || st.ExitedAt.Before(before) || st.ExitedAt.After(time.Now()) {
		t.Fatalf("status = %+v", st)
	}
	want := "--root " + filepath.Join(root, "testns") + " --log " + filepath.Join(bundle, "log.json") +
		" --log-format json delete --force c1"
	if got := readArgv(t, bin); got != want {
		t.Fatalf("runc argv = %q, want %q", got, want)
	}
}

func TestStopWithoutServerState(t *testing.T) {
	bundle, bin := t.TempDir(), t.TempDir()
	fakeRunc(t, bin, "runc", 1) // the container never existed: runc delete fails
	t.Setenv("PATH", bin)
	t.Chdir(bundle) // no -bundle flag: the working directory is the bundle
	st, err := New(testRuntime).Stop(stopCtx(""), "c1")
	if err != nil {
		t.Fatal(err)
	}
	if st.Pid != 0 || st.ExitStatus != 137 {
		t.Fatalf("status = %+v", st)
	}
	if got := readArgv(t, bin); !strings.HasSuffix(got, "delete --force c1") ||
		!strings.Contains(got, "--root /run/containerd/runc/testns") {
		t.Fatalf("runc argv = %q", got)
	}
}

func TestStopCorruptOptionsUsesDefaults(t *testing.T) {
	bundle, bin := t.TempDir(), t.TempDir()
	fakeRunc(t, bin, "runc", 0)
	t.Setenv("PATH", bin)
	if err := os.WriteFile(filepath.Join(bundle, process.OptionsFile), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := New(testRuntime).Stop(stopCtx(bundle), "c1"); err != nil {
		t.Fatal(err)
	}
	readArgv(t, bin)
}

// TestDeleteAction runs the delete action as containerd does after a shim died, with no server
// state in the bundle: exit 0 and nothing on stdout but a DeleteResponse.
func TestDeleteAction(t *testing.T) {
	bundle, bin := t.TempDir(), t.TempDir()
	fakeRunc(t, bin, "runc", 1)
	t.Setenv("PATH", bin+":"+os.Getenv("PATH"))
	if err := os.WriteFile(filepath.Join(bundle, process.InitPidFile), []byte("77"), 0o600); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code := runShim(t, bundle, nil,
		"-namespace", "testns", "-address", "/run/containerd/containerd.sock", "-publish-binary", "/usr/bin/containerd",
		"-id", "c1", "-bundle", bundle, "delete")
	if code != 0 {
		t.Fatalf("exit %d, stderr %s", code, stderr)
	}
	var resp taskapi.DeleteResponse
	if err := proto.Unmarshal(stdout, &resp); err != nil {
		t.Fatalf("stdout %q is not a DeleteResponse: %v", stdout, err)
	}
	if len(resp.ProtoReflect().GetUnknown()) != 0 || resp.GetPid() != 77 || resp.GetExitStatus() != 137 ||
		time.Since(resp.GetExitedAt().AsTime()) > time.Minute {
		t.Fatalf("response = %v (stdout %q)", &resp, stdout)
	}
	if !strings.Contains(string(stderr), "failed to force-delete") {
		t.Errorf("stderr lacks the runc warning: %s", stderr)
	}
}

// TestStopRemovesDeadSocket: the delete action removes the socket of a dead server (nothing
// listens: connect refused), named by the address file or by containerd's bootstrap.json, and
// keeps a socket a live server (another container of the group) still listens on.
func TestStopRemovesDeadSocket(t *testing.T) {
	for _, tc := range []struct {
		name, file string
		live       bool
	}{
		{"address file, dead", addressFile, false},
		{"bootstrap.json, dead", bootstrapFile, false},
		{"address file, live", addressFile, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bundle, bin, sockDir := t.TempDir(), t.TempDir(), t.TempDir()
			fakeRunc(t, bin, "runc", 0)
			t.Setenv("PATH", bin)
			sock := filepath.Join(sockDir, "s")
			l, err := shim.NewSocket("unix://" + sock)
			if err != nil {
				t.Fatal(err)
			}
			if tc.live {
				defer l.Close()
			} else {
				l.SetUnlinkOnClose(false)
				l.Close() // the socket file stays, nothing listens: a SIGKILLed server
			}
			content := "unix://" + sock
			if tc.file == bootstrapFile {
				content = `{"version":3,"address":"unix://` + sock + `","protocol":"ttrpc"}`
			}
			if err := os.WriteFile(filepath.Join(bundle, tc.file), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := New(testRuntime).Stop(stopCtx(bundle), "c1"); err != nil {
				t.Fatal(err)
			}
			_, err = os.Lstat(sock)
			if tc.live && err != nil {
				t.Fatalf("live socket removed: %v", err)
			}
			if !tc.live && !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("dead socket left: %v", err)
			}
		})
	}
}
