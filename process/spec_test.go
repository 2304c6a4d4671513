//go:build linux

package process

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestReadSpec(t *testing.T) {
	write := func(content string) string {
		dir := t.TempDir()
		if content != "" {
			if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	for _, tc := range []struct {
		name, bundle string
		ok           bool
	}{
		{"valid", write(`{"process":{"args":["true"],"cwd":"/"}}`), true},
		{"relative bundle", "bundle", false},
		{"missing bundle", "/nonexistent/bundle", false},
		{"no config.json", write(""), false},
		{"not JSON", write("{"), false},
		{"no process", write(`{"ociVersion":"1.0.2"}`), false},
		{"no args", write(`{"process":{"cwd":"/"}}`), false},
		{"relative cwd", write(`{"process":{"args":["true"],"cwd":"tmp"}}`), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadSpec(tc.bundle)
			if tc.ok != (err == nil) || (err != nil && !errdefs.IsInvalidArgument(err)) {
				t.Fatalf("ReadSpec: %v, want ok=%v or InvalidArgument", err, tc.ok)
			}
		})
	}
}

func TestHasOwnPIDNamespace(t *testing.T) {
	for _, tc := range []struct {
		linux *SpecLinux
		want  bool
	}{
		{nil, true},
		{&SpecLinux{}, false},
		{&SpecLinux{Namespaces: []specs.LinuxNamespace{{Type: specs.PIDNamespace}}}, true},
		{&SpecLinux{Namespaces: []specs.LinuxNamespace{{Type: specs.PIDNamespace, Path: "/proc/1/ns/pid"}}}, false},
	} {
		if got := hasOwnPIDNamespace(&Spec{Linux: tc.linux}); got != tc.want {
			t.Errorf("%+v: got %v, want %v", tc.linux, got, tc.want)
		}
	}
}
