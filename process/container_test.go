//go:build linux

package process

import (
	"errors"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	shimio "github.com/custom-shim/containerd-shim-custom-v1/io"
)

// An exec is added only to a container whose init is created or running: a paused container
// (or one being paused) and a stopped one refuse it at Exec, naming the exec, the container and
// the state, before anything is registered (as the reference refuses "exec in a paused state"),
// so no TaskExecAdded follows. The exec id is free again once the container runs.
func TestAddExecRefusedUnlessLive(t *testing.T) {
	spec := &specs.Process{Args: []string{"true"}, Cwd: "/"}
	for _, st := range []State{Created, Running, Pausing, Paused, Stopped} {
		t.Run(st.String(), func(t *testing.T) {
			i, _ := newFakeInit(t, &Options{}, Running)
			switch st {
			case Created:
				i, _ = newFakeInit(t, &Options{}, Created)
			case Pausing:
				i.cas(Running, Pausing)
			case Paused:
				i.cas(Running, Pausing)
				i.cas(Pausing, Paused)
			case Stopped:
				i.SetExited(0, i.exitedAt)
			}
			c := NewContainer(i)
			_, err := c.AddExec("e1", spec, shimio.Stdio{})
			if st == Created || st == Running {
				if err != nil {
					t.Fatalf("exec in a %s container: %v", st, err)
				}
				return
			}
			if !errors.Is(err, errdefs.ErrFailedPrecondition) {
				t.Fatalf("exec in a %s container: %v, want FailedPrecondition", st, err)
			}
			for _, want := range []string{"e1", "c1", st.String()} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not name %q", err, want)
				}
			}
			if _, err := c.Exec("e1"); !errors.Is(err, errdefs.ErrNotFound) {
				t.Errorf("the refused exec is registered: %v", err)
			}
		})
	}
}
