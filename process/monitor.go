//go:build linux

package process

import (
	"os/exec"

	"github.com/containerd/containerd/v2/pkg/sys/reaper"
	runc "github.com/containerd/go-runc"
)

// Monitor is go-runc's process monitor for the shim: children are waited for through pkg/shim's
// reaper (which reaps every child on SIGCHLD, so exec.Cmd.Wait alone would race it), and their
// os.Process handles are released afterwards. Since Go 1.23 such a handle holds a pidfd, which
// Cmd.Wait would close after a successful wait; here the reaper has reaped the child, that wait
// fails with ECHILD and the pidfd would stay open until a garbage collection.
type Monitor struct {
	*reaper.Monitor
}

// NewMonitor wraps reaper.Default.
func NewMonitor() Monitor { return Monitor{reaper.Default} }

// Wait waits for c's exit status from the reaper, then releases c's process handle.
func (m Monitor) Wait(c *exec.Cmd, ec chan runc.Exit) (int, error) {
	status, err := m.Monitor.Wait(c, ec)
	if c.Process != nil {
		_ = c.Process.Release()
	}
	return status, err
}
