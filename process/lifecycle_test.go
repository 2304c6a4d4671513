//go:build linux

package process

import (
	"strings"
	"testing"

	"github.com/containerd/errdefs"
)

// TestStatsWithoutCgroup: a container whose cgroup could not be loaded (or one deleted) answers
// NotFound naming it, never a panic.
func TestStatsWithoutCgroup(t *testing.T) {
	i := &Init{proc: newProc(), id: "c1"}
	for _, st := range []State{Running, Stopped, Deleted} {
		i.state = st
		if _, err := i.Stats(); !errdefs.IsNotFound(err) || !strings.Contains(err.Error(), "c1") {
			t.Errorf("%s: Stats() = %v, want NotFound naming c1", st, err)
		}
	}
}
