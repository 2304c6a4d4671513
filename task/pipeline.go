//go:build linux

package task

import (
	eventstypes "github.com/containerd/containerd/api/events"
	"github.com/containerd/containerd/v2/pkg/protobuf"
	"github.com/containerd/errdefs"
	runc "github.com/containerd/go-runc"

	"github.com/custom-shim/containerd-shim-custom-v1/process"
)

// pump moves exits from the reaper's channel to the unbounded queue; it never blocks the reaper.
func (s *service) pump(ec chan runc.Exit) {
	for e := range ec {
		s.exits.push(e)
	}
	s.exits.close()
}

// dispatch is the single goroutine that handles reaped exits, in order.
func (s *service) dispatch() {
	for {
		batch, ok := s.exits.pop()
		if !ok {
			return
		}
		for _, e := range batch {
			for _, rp := range s.router.Route(e) {
				s.handleExit(rp, e)
			}
		}
	}
}

// handleExit records a reaped exit and starts its publication, which runs off the dispatcher:
// each process's exit waits for its own output to be read (publishExit), and one container's
// unread output never holds up another's exit. The order that matters is kept: an init's exit is
// published after the exits of its execs (execGate), and each process's exit once (MarkReaped).
func (s *service) handleExit(rp routed, e runc.Exit) {
	if !rp.p.MarkReaped() {
		return // its exit was handled already
	}
	if rp.init {
		if rp.c.sharedPID {
			// Its other processes outlive it: end them, off the dispatcher, so that their
			// exits (which the gate waits for) come.
			go s.killRemaining(rp.c)
		}
		// Recorded now, so that no exec starts from here on; published once the execs' are.
		rp.c.gate.initExited(func() { s.publishing.Go(func() { s.publishExit(rp, e) }) })
		return
	}
	s.publishing.Go(func() {
		s.publishExit(rp, e)
		rp.c.gate.leave()
	})
}

// publishExit waits (bounded) for the process's output to be read, queues the TaskExit event,
// then records the exit: a Wait that returns has its event queued ahead of anything the client
// does next.
func (s *service) publishExit(rp routed, e runc.Exit) {
	if st := rp.p.State(); st == process.Stopped || st == process.Deleted {
		return
	}
	// The client deletes the process once it has its exit, dropping what its fifos still hold.
	rp.p.WaitOutputTaken()
	if rp.init {
		// OOM hook: an OOM kill not reported yet is published before the init's exit.
		s.oom.beforeInitExit(rp.c.id)
	}
	s.events.send(&eventstypes.TaskExit{
		ContainerID: rp.c.id,
		ID:          rp.p.ID(),
		Pid:         uint32(e.Pid),
		ExitStatus:  uint32(e.Status),
		ExitedAt:    protobuf.ToTimestamp(e.Timestamp),
	})
	rp.p.SetExited(e.Status, e.Timestamp)
}

func (s *service) killRemaining(c *container) {
	if err := c.Init.KillAll(s.ctx); err != nil && !errdefs.IsNotFound(err) {
		logger(s.ctx, c.id, "").WithError(err).Warn("kill processes left after init exit")
	}
}
