//go:build linux

package tune

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
//
// Starts are bounded: the thread that forks stays blocked in the kernel until the child has
// exec'd, the Go runtime brings up another thread for every such blocked one, and never gives
// threads back. 300 concurrent execs left the shim with over 100 threads for good; a few
// concurrent forks are as fast, since they queue in the kernel anyway.
type Monitor struct {
	*reaper.Monitor
	starts chan struct{}
}

// maxConcurrentStarts bounds the children being forked at once.
const maxConcurrentStarts = 4

// NewMonitor wraps reaper.Default.
func NewMonitor() Monitor {
	return Monitor{Monitor: reaper.Default, starts: make(chan struct{}, maxConcurrentStarts)}
}

// Start starts c (at most maxConcurrentStarts forks at a time) and subscribes to its exit.
func (m Monitor) Start(c *exec.Cmd) (chan runc.Exit, error) {
	return m.start(c, m.Monitor.Start)
}

// StartLocked is Start with the forking goroutine locked to its thread.
func (m Monitor) StartLocked(c *exec.Cmd) (chan runc.Exit, error) {
	return m.start(c, m.Monitor.StartLocked)
}

// start takes a start slot and counts the child as live (threads.go) until Wait.
func (m Monitor) start(c *exec.Cmd, start func(*exec.Cmd) (chan runc.Exit, error)) (chan runc.Exit, error) {
	m.starts <- struct{}{}
	defer func() { <-m.starts }()
	childStarting()
	ec, err := start(c)
	if err != nil {
		childDone()
	}
	return ec, err
}

// Wait waits for c's exit status from the reaper, then releases c's process handle. Call it once
// for each successful Start.
func (m Monitor) Wait(c *exec.Cmd, ec chan runc.Exit) (int, error) {
	status, err := m.Monitor.Wait(c, ec)
	childDone()
	if c.Process != nil {
		_ = c.Process.Release()
	}
	return status, err
}
