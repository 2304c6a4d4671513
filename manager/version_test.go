//go:build linux

package manager

import (
	"bytes"
	"strings"
	"testing"

	"github.com/custom-shim/containerd-shim-custom-v1/version"
)

// TestPrintVersion checks every line of -v: the version and revision of this build, the Go
// version, and the containerd library. A test binary carries no module list, so the library's
// version is "unknown" here; hack/release-test.sh checks it in a real build.
func TestPrintVersion(t *testing.T) {
	var b bytes.Buffer
	printVersion(&b)
	out := b.String()
	for _, want := range []string{
		"  Version:  " + version.Version + "\n",
		"  Revision: " + version.GetRevision() + "\n",
		"  Go version: go",
		"  containerd: github.com/containerd/containerd/v2 " + version.ContainerdVersion() + "\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("-v output lacks %q:\n%s", want, out)
		}
	}
}
