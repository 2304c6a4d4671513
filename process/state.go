//go:build linux

package process

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
)

// errProcessGone: the process has exited; a signal would not reach it.
var errProcessGone = fmt.Errorf("process already finished: %w", errdefs.ErrNotFound)

// openPidfd opens a pidfd for pid; -1 if the kernel has none (before Linux 5.3) or the process is
// gone.
func openPidfd(pid int) int {
	if pid <= 0 {
		return -1
	}
	fd, err := unix.PidfdOpen(pid, 0) // close-on-exec, always
	if err != nil {
		return -1
	}
	return fd
}

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
	// pidfd refers to the process itself, whatever its pid becomes once it is reaped: signals
	// go through it (signal). -1 before the pid is known, once the process stopped, or where the
	// kernel has no pidfds. Guarded by mu.
	pidfd int
	// reaped: the reaper has collected the process's exit, which may not be published yet (its
	// output is still being read): its pid may already belong to another process.
	reaped atomic.Bool
	// done is closed when the process has stopped (exited, or was deleted unstarted).
	done chan struct{}
}

func newProc() proc {
	return proc{done: make(chan struct{}), pidfd: -1}
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

// setPid records the pid of the process the OCI runtime started and opens a pidfd for it. Call
// it while the process's start window is open (task's exitRouter): if the process died and its
// pid was taken by another before the pidfd was opened, the window saw that exit, and the exit is
// marked (MarkReaped) before any signal can go through the pidfd.
func (p *proc) setPid(pid int) {
	fd := openPidfd(pid)
	p.mu.Lock()
	p.pid = pid
	if p.pidfd >= 0 {
		_ = unix.Close(p.pidfd)
	}
	p.pidfd = fd
	p.mu.Unlock()
}

// MarkReaped records that the reaper has collected the process's exit; false if that was
// recorded already (the exit is handled once). From then on the process is never signalled.
func (p *proc) MarkReaped() bool { return p.reaped.CompareAndSwap(false, true) }

// signal sends sig to the process: through its pidfd, or by pid where the kernel has none. A
// process already reaped is never signalled (its pid may be another's): errProcessGone.
func (p *proc) signal(sig unix.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.reaped.Load() || p.state == Stopped || p.state == Deleted {
		return errProcessGone
	}
	if p.pidfd >= 0 {
		if err := unix.PidfdSendSignal(p.pidfd, sig, nil, 0); err != nil {
			if errors.Is(err, unix.ESRCH) {
				return errProcessGone
			}
			return err
		}
		return nil
	}
	if p.pid <= 0 {
		return errProcessGone
	}
	return unix.Kill(p.pid, sig)
}

// alive reports whether the process may still be signalled: not reaped, and (where it has a
// pidfd) not gone. A process whose pid is not known yet (a restore not started) counts as alive:
// the OCI runtime decides.
func (p *proc) alive() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.reaped.Load() {
		return false
	}
	if p.pidfd < 0 {
		return true
	}
	return !errors.Is(unix.PidfdSendSignal(p.pidfd, 0, nil, 0), unix.ESRCH)
}

// closePidfd releases the pidfd once the process has stopped. Call with mu held.
func (p *proc) closePidfdLocked() {
	if p.pidfd >= 0 {
		_ = unix.Close(p.pidfd)
		p.pidfd = -1
	}
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
	p.closePidfdLocked()
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
		p.closePidfdLocked()
		close(p.done)
	case Deleted:
		return fmt.Errorf("process already deleted: %w", errdefs.ErrNotFound)
	default:
		return fmt.Errorf("cannot delete a %s process: %w", p.state, errdefs.ErrFailedPrecondition)
	}
	p.state = Deleted
	return nil
}
