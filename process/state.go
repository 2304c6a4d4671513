//go:build linux

package process

import (
	"fmt"
	"sync"
	"time"

	"github.com/containerd/errdefs"
)

// State is where a process is in its life.
type State uint8

// The states of a process.
const (
	Created State = iota
	Running
	Pausing
	Paused
	Stopped
	Deleted
)

var stateNames = [...]string{"created", "running", "pausing", "paused", "stopped", "deleted"}

func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("state(%d)", s)
}

// next lists the transitions allowed out of each state. Stopped is reachable from every live
// state: an exit always wins.
var next = map[State][]State{
	Created: {Running, Stopped, Deleted},
	Running: {Pausing, Stopped},
	Pausing: {Paused, Running, Stopped},
	Paused:  {Running, Stopped},
	Stopped: {Deleted},
}

func allowed(from, to State) bool {
	for _, s := range next[from] {
		if s == to {
			return true
		}
	}
	return false
}

// proc is the core shared by init and exec processes: identity, pid, state and exit.
type proc struct {
	mu       sync.Mutex
	state    State     // guarded by mu
	pid      int       // guarded by mu
	status   int       // exit status, guarded by mu
	exitedAt time.Time // guarded by mu
	// done is closed when the process has stopped (exited, or was deleted unstarted).
	done chan struct{}
}

func newProc() proc {
	return proc{done: make(chan struct{})}
}

// cas moves from → to if the process is still in from and the move is allowed. It returns false
// if another transition (an exit, most often) won.
func (p *proc) cas(from, to State) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.state != from || !allowed(from, to) {
		return false
	}
	p.state = to
	return true
}

// State returns the current state.
func (p *proc) State() State {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.state
}

// Pid returns the process id, 0 before the process exists.
func (p *proc) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pid
}

func (p *proc) setPid(pid int) {
	p.mu.Lock()
	p.pid = pid
	p.mu.Unlock()
}

// Exit returns the exit status and time; both are zero until the process stopped.
func (p *proc) Exit() (int, time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.status, p.exitedAt
}

// SetExited records an exit: any live state becomes Stopped. It never blocks on a lifecycle
// operation and returns false if the process had already stopped or was deleted.
func (p *proc) SetExited(status int, at time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.state == Stopped || p.state == Deleted {
		return false
	}
	p.state = Stopped
	p.status = status
	p.exitedAt = at
	close(p.done)
	return true
}

// Done is closed once the process has stopped.
func (p *proc) Done() <-chan struct{} { return p.done }

// markDeleted moves a stopped or never-started process to Deleted.
func (p *proc) markDeleted() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch p.state {
	case Stopped:
	case Created:
		p.exitedAt = time.Now()
		close(p.done)
	case Deleted:
		return fmt.Errorf("process already deleted: %w", errdefs.ErrNotFound)
	default:
		return fmt.Errorf("cannot delete a %s process: %w", p.state, errdefs.ErrFailedPrecondition)
	}
	p.state = Deleted
	return nil
}
