//go:build linux

package manager

import (
	"os"
	"path/filepath"
	"testing"

	ocibundle "github.com/custom-shim/containerd-shim-custom-v1/bundle"
)

func TestGroupID(t *testing.T) {
	tests := []struct {
		name        string
		annotations map[string]string
		want        string
	}{
		{name: "no annotations", want: "c1"},
		{name: "sandbox id", annotations: map[string]string{ocibundle.SandboxIDAnnotation: "pod"}, want: "pod"},
		{name: "group", annotations: map[string]string{ocibundle.GroupAnnotation: "g"}, want: "g"},
		{name: "sandbox id wins over group", annotations: map[string]string{ocibundle.GroupAnnotation: "g", ocibundle.SandboxIDAnnotation: "pod"}, want: "pod"},
		{name: "empty sandbox id ignored", annotations: map[string]string{ocibundle.SandboxIDAnnotation: "", ocibundle.GroupAnnotation: "g"}, want: "g"},
		{name: "runc-v2 group label is not ours", annotations: map[string]string{"io.containerd.runc.v2.group": "r"}, want: "c1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := groupID(newBundle(t, tc.annotations), "c1")
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("group = %q, want %q", got, tc.want)
			}
		})
	}
}

// A sandbox's bundle (containerd's sandbox controller starts the shim on one before
// CreateSandbox) has no config.json: its group is its own id.
func TestGroupIDSandboxBundle(t *testing.T) {
	if g, err := groupID(t.TempDir(), "sb1"); err != nil || g != "sb1" {
		t.Fatalf("group of a bundle without config.json: %q, %v; want sb1", g, err)
	}
}

func TestGroupIDBadSpec(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := groupID(dir, "c1"); err == nil {
		t.Fatal("corrupt config.json accepted")
	}
}
