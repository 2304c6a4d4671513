//go:build linux

package manager

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/containerd/api/types"
	"github.com/containerd/containerd/api/types/runc/options"
	"github.com/opencontainers/runtime-spec/specs-go/features"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/custom-shim/containerd-shim-custom-v1/version"
)

const featuresJSON = `{"ociVersionMin":"1.0.0","ociVersionMax":"1.2.1","hooks":["prestart"]}`

// fakeFeaturesRuntime writes an OCI runtime stand-in whose `features` prints featuresJSON.
func fakeFeaturesRuntime(t *testing.T, dir, name string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	writeScript(t, path, "[ \"$1\" = features ] || exit 1\necho '"+featuresJSON+"'\n")
	return path
}

func checkFeatures(t *testing.T, a *anypb.Any) {
	t.Helper()
	if a.GetTypeUrl() != "types.containerd.io/opencontainers/runtime-spec/1/features/Features" {
		t.Fatalf("features type URL = %q", a.GetTypeUrl())
	}
	var f features.Features
	if err := json.Unmarshal(a.GetValue(), &f); err != nil {
		t.Fatal(err)
	}
	if f.OCIVersionMax != "1.2.1" || len(f.Hooks) != 1 {
		t.Fatalf("features = %+v", f)
	}
}

func TestInfoDefaults(t *testing.T) {
	bin := t.TempDir()
	fakeFeaturesRuntime(t, bin, "runc")
	t.Setenv("PATH", bin)
	info, err := New(testRuntime).Info(context.Background(), bytes.NewReader(nil))
	if err != nil {
		t.Fatal(err)
	}
	if info.GetName() != testRuntime || info.GetVersion().GetVersion() != version.Version ||
		info.GetVersion().GetRevision() != version.GetRevision() || info.GetOptions() != nil {
		t.Fatalf("info = %v", info)
	}
	checkFeatures(t, info.GetFeatures())
}

func TestInfoEchoesOptionsAndUsesBinaryName(t *testing.T) {
	t.Setenv("PATH", t.TempDir()) // no runc on PATH: BinaryName must be used
	opts, err := anypb.New(&options.Options{BinaryName: fakeFeaturesRuntime(t, t.TempDir(), "my-runtime")})
	if err != nil {
		t.Fatal(err)
	}
	info, err := New(testRuntime).Info(context.Background(), bytes.NewReader(mustMarshal(t, opts)))
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(info.GetOptions(), opts) {
		t.Fatalf("options = %v, want %v", info.GetOptions(), opts)
	}
	checkFeatures(t, info.GetFeatures())
}

func TestInfoWithoutFeatures(t *testing.T) {
	bin := t.TempDir()
	writeScript(t, filepath.Join(bin, "runc"), "exit 1\n")
	t.Setenv("PATH", bin)
	info, err := New(testRuntime).Info(context.Background(), bytes.NewReader(nil))
	if err != nil {
		t.Fatal(err)
	}
	if info.GetFeatures() != nil {
		t.Fatalf("features = %v, want none", info.GetFeatures())
	}
}

func TestInfoRejectsUnknownOptions(t *testing.T) {
	a, err := anypb.New(&types.RuntimeVersion{Version: "x"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(testRuntime).Info(context.Background(), bytes.NewReader(mustMarshal(t, a))); err == nil {
		t.Fatal("unknown options type accepted")
	}
}

// TestInfoFlag runs -info through pkg/shim as containerd's introspection does.
func TestInfoFlag(t *testing.T) {
	bin := t.TempDir()
	fakeFeaturesRuntime(t, bin, "runc")
	t.Setenv("PATH", bin)
	stdout, stderr, code := runShim(t, t.TempDir(), nil, "-info")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var info types.RuntimeInfo
	if err := proto.Unmarshal(stdout, &info); err != nil {
		t.Fatal(err)
	}
	if info.GetName() != testRuntime {
		t.Fatalf("info = %v", &info)
	}
	checkFeatures(t, info.GetFeatures())
}

func TestVersionFlag(t *testing.T) {
	for _, flag := range []string{"-v", "--version"} {
		stdout, stderr, code := runShim(t, t.TempDir(), nil, flag)
		if code != 0 || !strings.Contains(string(stdout), "Version:  "+version.Version) ||
			!strings.Contains(string(stdout), "Revision: "+version.GetRevision()) {
			t.Fatalf("%s: exit %d, stdout %q, stderr %q", flag, code, stdout, stderr)
		}
	}
}
