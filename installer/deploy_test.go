//go:build linux

package installer

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDeployManifests keeps deploy/ in step with the installer: every handler it installs has a
// RuntimeClass, and the DaemonSets run the installer and the shim under their names.
func TestDeployManifests(t *testing.T) {
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join("..", "deploy", name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	rc := read("runtimeclass.yaml")
	for _, h := range []string{HandlerCustom, HandlerSandboxed} {
		if !strings.Contains(rc, "\nhandler: "+h+"\n") {
			t.Errorf("runtimeclass.yaml has no RuntimeClass with handler %s", h)
		}
	}
	for _, f := range []string{"daemonset.yaml", "uninstall-daemonset.yaml", "Containerfile"} {
		if s := read(f); !strings.Contains(s, "/opt/containerd-shim-custom-v1/bin/custom-shim-install") {
			t.Errorf("%s does not run /opt/containerd-shim-custom-v1/bin/custom-shim-install", f)
		}
	}
	if ds := read("daemonset.yaml"); !strings.Contains(ds, "/opt/containerd-shim-custom-v1/bin/"+ShimName) {
		t.Errorf("daemonset.yaml does not install /opt/containerd-shim-custom-v1/bin/%s", ShimName)
	}
}
