//go:build linux

package process

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	runc "github.com/containerd/go-runc"
)

// recordingRuntime is an OCI runtime that records its arguments, one call per line, and exits 0.
func recordingRuntime(t *testing.T) (bin, calls string) {
	t.Helper()
	dir := t.TempDir()
	bin, calls = filepath.Join(dir, "runc"), filepath.Join(dir, "calls")
	script := "#!/bin/sh\necho \"$*\" >> " + calls + "\n"
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return bin, calls
}

// A stopped container is deleted without --force (runc's forced delete sleeps 100 ms in its
// kill path); only if runc refuses is it forced. A created one is forced at once.
func TestDeleteForcesOnlyWhatIsNotStopped(t *testing.T) {
	for _, tc := range []struct {
		name   string
		state  State
		refuse bool
		want   []string
	}{
		{"stopped", Stopped, false, []string{"delete c1"}},
		{"stopped, runc refuses", Stopped, true, []string{"delete c1", "delete --force c1"}},
		{"created", Created, false, []string{"delete --force c1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bin, calls := recordingRuntime(t)
			if tc.refuse {
				// The first call fails, the second succeeds.
				script := "#!/bin/sh\necho \"$*\" >> " + calls + "\n[ $(wc -l < " + calls + ") -gt 1 ]\n"
				if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			i := &Init{proc: newProc(), id: "c1", rt: &runc.Runc{Command: bin}}
			if tc.state == Stopped {
				i.setPid(1)
				i.SetExited(0, time.Now())
			}
			if i.State() != tc.state {
				t.Fatalf("state %s, want %s", i.State(), tc.state)
			}
			if err := i.Delete(context.Background()); err != nil {
				t.Fatalf("Delete: %v", err)
			}
			raw, _ := os.ReadFile(calls)
			var got []string
			for _, l := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
				got = append(got, strings.TrimSpace(l))
			}
			if strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Fatalf("runtime calls %q, want %q", got, tc.want)
			}
		})
	}
}
