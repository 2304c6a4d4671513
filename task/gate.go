//go:build linux

package task

import (
	"fmt"
	"sync"

	"github.com/containerd/errdefs"
)

// execGate orders a container's exits: its init's exit is published only after every exec
// that was started (or is starting) has had its exit published, and no exec may start once
// the init has exited (containerd e7357916b, 421a4b568, #9719).
type execGate struct {
	mu       sync.Mutex
	running  int    // execs started or starting whose exit is not yet published
	held     func() // the init's exit publication, held while running > 0
	initDone bool   // the init has exited
}

// enter admits an exec start, or refuses it once the init has exited.
func (g *execGate) enter(cid, execID string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.initDone {
		return fmt.Errorf("exec %s in container %s: container init has exited: %w", execID, cid, errdefs.ErrFailedPrecondition)
	}
	g.running++
	return nil
}

// leave records that an admitted exec has exited (its exit published) or failed to start.
// The last one out releases a held init exit.
func (g *execGate) leave() {
	g.mu.Lock()
	g.running--
	var release func()
	if g.running == 0 && g.held != nil {
		release, g.held = g.held, nil
	}
	g.mu.Unlock()
	if release != nil {
		release()
	}
}

// initExited runs publish now if no exec is running, otherwise when the last one leaves.
func (g *execGate) initExited(publish func()) {
	g.mu.Lock()
	g.initDone = true
	if g.running > 0 {
		g.held = publish
		g.mu.Unlock()
		return
	}
	g.mu.Unlock()
	publish()
}
