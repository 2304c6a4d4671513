//go:build linux

package process

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	shimio "github.com/custom-shim/containerd-shim-custom-v1/io"
)

// Process is what init and exec processes have in common.
type Process interface {
	ID() string
	Pid() int
	State() State
	Exit() (int, time.Time)
	Done() <-chan struct{}
	SetExited(status int, at time.Time) bool
	// MarkReaped records that the process's exit was reaped (before it is published); false if
	// it was already. The process is never signalled again.
	MarkReaped() bool
	Stdio() shimio.Stdio
	Start(ctx context.Context) error
	Kill(ctx context.Context, sig uint32, all bool) error
	Delete(ctx context.Context) error
	CloseStdin() error
	// WaitOutputTaken waits, bounded, until the process's output has been read from the shim's
	// side (see shimio.ProcessIO.WaitOutputTaken); call it before its exit is published.
	WaitOutputTaken()
}

// Bounds of WaitOutputTaken: a reader that takes nothing for outputStall is taken to be gone (a
// detached client's fifo stays full), and no exit waits more than outputWaitLimit for its output.
const (
	outputWaitLimit = 2 * time.Second
	outputStall     = 100 * time.Millisecond
)

func waitOutputTaken(pio *shimio.ProcessIO) {
	if pio != nil {
		pio.WaitOutputTaken(outputWaitLimit, outputStall)
	}
}

var (
	_ Process = (*Init)(nil)
	_ Process = (*Exec)(nil)
)

// Container is a container's init process and its execs.
type Container struct {
	Init *Init

	mu    sync.Mutex
	execs map[string]*Exec // nil value: id reserved while the exec is being set up. Guarded by mu.
}

// NewContainer wraps a created init process.
func NewContainer(i *Init) *Container {
	return &Container{Init: i, execs: map[string]*Exec{}}
}

// ID returns the container id.
func (c *Container) ID() string { return c.Init.id }

// AddExec registers a new exec process. A duplicate exec id is AlreadyExists; a container that
// is not created or running (paused, being paused, stopped) is FailedPrecondition.
func (c *Container) AddExec(id string, spec *specs.Process, stdio shimio.Stdio) (*Exec, error) {
	if spec == nil {
		return nil, fmt.Errorf("exec %s in container %s: no process spec: %w", id, c.ID(), errdefs.ErrInvalidArgument)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.execs[id]; ok {
		return nil, fmt.Errorf("exec %s in container %s: %w", id, c.ID(), errdefs.ErrAlreadyExists)
	}
	// Only a created or running container takes an exec (the reference refuses one in a paused
	// or stopped container at Exec too); one being paused is refused as the paused one it is
	// about to be (the reference's Exec waits for the pause, then refuses).
	if st := c.Init.State(); st != Created && st != Running {
		return nil, fmt.Errorf("exec %s in container %s: the container is %s: %w", id, c.ID(), st, errdefs.ErrFailedPrecondition)
	}
	e := &Exec{proc: newProc(), id: id, cid: c.ID(), init: c.Init, spec: *spec, stdio: stdio}
	c.execs[id] = e
	return e, nil
}

// Exec returns the exec process id.
func (c *Container) Exec(id string) (*Exec, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.execs[id]
	if !ok {
		return nil, fmt.Errorf("exec %s in container %s: %w", id, c.ID(), errdefs.ErrNotFound)
	}
	return e, nil
}

// Process returns the init process for "" and the exec otherwise.
func (c *Container) Process(execID string) (Process, error) {
	if execID == "" {
		return c.Init, nil
	}
	return c.Exec(execID)
}

// RemoveExec forgets an exec.
func (c *Container) RemoveExec(id string) {
	c.mu.Lock()
	delete(c.execs, id)
	c.mu.Unlock()
}

// ExecByPid returns the id of the live exec with that pid, or "".
func (c *Container) ExecByPid(pid int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, e := range c.execs {
		if e.Pid() == pid {
			return id
		}
	}
	return ""
}
