//go:build linux

package process

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/containerd/errdefs"

	"github.com/custom-shim/containerd-shim-custom-v1/bundle"
)

// A spec without a process, with no args or with a relative cwd is InvalidArgument.
func TestCheckSpec(t *testing.T) {
	for _, tc := range []struct {
		name, config string
		ok           bool
	}{
		{"valid", `{"process":{"args":["true"],"cwd":"/"}}`, true},
		{"command line", `{"process":{"commandLine":"true","cwd":"/"}}`, true},
		{"no process", `{"ociVersion":"1.0.2"}`, false},
		{"no args", `{"process":{"cwd":"/"}}`, false},
		{"relative cwd", `{"process":{"args":["true"],"cwd":"tmp"}}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, bundle.ConfigFile), []byte(tc.config), 0o600); err != nil {
				t.Fatal(err)
			}
			spec, err := bundle.Read(dir)
			if err != nil {
				t.Fatal(err)
			}
			err = CheckSpec(spec)
			if tc.ok != (err == nil) || (err != nil && !errdefs.IsInvalidArgument(err)) {
				t.Fatalf("CheckSpec: %v, want ok=%v or InvalidArgument", err, tc.ok)
			}
		})
	}
}
