//go:build linux

package pod

import (
	"bytes"
	"os"
	"os/exec"
	"testing"

	"github.com/containerd/containerd/v2/pkg/sys/reaper"

	"github.com/custom-shim/containerd-shim-custom-v1/internal/shimtest"
)

// TestMain reaps children the way pkg/shim does in the shim (SIGCHLD → reaper.Reap), so that
// holders are waited through reaper.Default as in production; with POD_TEST_SHIM set, the test
// binary is a stand-in shim instead (runFakeShim).
func TestMain(m *testing.M) {
	shimtest.ReapLoop()
	if os.Getenv(fakeShimEnv) != "" {
		os.Exit(runFakeShim())
	}
	os.Exit(m.Run())
}

// run runs cmd through the reaper (a plain cmd.Run races TestMain's reaping) and returns its
// output and exit status.
func run(t *testing.T, name string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(name, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	ec, err := reaper.Default.Start(cmd)
	if err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	status, _ := reaper.Default.Wait(cmd, ec)
	return out.String(), status
}

// mustRun is run that fails the test on a non-zero exit.
func mustRun(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, status := run(t, name, args...)
	if status != 0 {
		t.Fatalf("%s %v: exit %d: %s", name, args, status, out)
	}
	return out
}
