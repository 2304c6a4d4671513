//go:build linux

package process

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/containerd/errdefs"
	runc "github.com/containerd/go-runc"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	shimio "github.com/custom-shim/containerd-shim-custom-v1/io"
)

// Exec is an additional process run inside a container.
type Exec struct {
	proc
	opMu sync.Mutex

	id    string
	cid   string
	init  *Init
	spec  specs.Process
	stdio shimio.Stdio
	// io is the process's stdio, set by Start (under opMu) before its pid is known, so that its
	// exit, published only once the pid is known, finds it: the exit path reads it without opMu.
	io atomic.Pointer[shimio.ProcessIO]
}

// ID returns the exec id.
func (e *Exec) ID() string { return e.id }

// Stdio returns the stdio the client asked for.
func (e *Exec) Stdio() shimio.Stdio { return e.stdio }

func (e *Exec) name() string { return fmt.Sprintf("exec %s in container %s", e.id, e.cid) }

// Start runs the process with the OCI runtime's exec, detached. On success the process is
// Running and its pid is known.
func (e *Exec) Start(ctx context.Context) error {
	e.opMu.Lock()
	defer e.opMu.Unlock()
	if st := e.State(); st != Created {
		return fmt.Errorf("%s is %s, not created: %w", e.name(), st, errdefs.ErrFailedPrecondition)
	}
	cfg := e.init.ioCfg
	pio, sock, err := openIO(e.name(), e.stdio, cfg)
	if err != nil {
		return err
	}
	defer closeSocket(sock)
	pidFile := filepath.Join(e.init.bundle, e.id+".pid")
	rt := e.init.rt
	m := markLog(rt.Log)
	err = rt.Exec(ctx, e.cid, e.spec, &runc.ExecOpts{PidFile: pidFile, IO: runtimeIO(pio), ConsoleSocket: consoleSocket(sock), Detach: true})
	if err != nil {
		_ = pio.Close()
		return m.wrap(err, e.name()+": OCI runtime exec failed")
	}
	pid, err := runc.ReadPidFile(pidFile)
	if err != nil {
		_ = pio.Close()
		return fmt.Errorf("%s: read pid file: %w", e.name(), err)
	}
	if err := attachConsole(e.name(), pio, sock); err != nil {
		// The process runs but its terminal is lost: end it rather than leave it unreachable.
		_ = unix.Kill(pid, unix.SIGKILL)
		_ = pio.Close()
		return err
	}
	e.io.Store(pio)
	e.setPid(pid)
	e.cas(Created, Running)
	return nil
}

// Kill signals the exec process, through its pidfd: once it has exited, even before its exit is
// published, a signal could only reach another process that took its pid, so it is NotFound.
func (e *Exec) Kill(_ context.Context, sig uint32, _ bool) error {
	if e.State() == Created {
		return fmt.Errorf("%s not started: %w", e.name(), errdefs.ErrFailedPrecondition)
	}
	if err := e.signal(unix.Signal(sig)); err != nil {
		return fmt.Errorf("%s: %w", e.name(), logMark{}.killError(err))
	}
	return nil
}

// Delete releases a stopped or never started exec, and with it its output, even if a process the
// exec left behind still holds it: the client reads EOF.
func (e *Exec) Delete(ctx context.Context) error {
	e.opMu.Lock()
	defer e.opMu.Unlock()
	if err := e.markDeleted(); err != nil {
		return fmt.Errorf("%s: %w", e.name(), err)
	}
	closeIO(ctx, e.io.Load(), e.cid, e.id)
	return nil
}

// WaitOutputTaken waits, bounded, until the exec's output has been read (Process). It is on the
// exit path: it takes no lock (opMu is held across the OCI runtime's exec).
func (e *Exec) WaitOutputTaken() { waitOutputTaken(e.io.Load()) }

// CloseStdin releases the shim's hold on the stdin fifo (CloseIO).
func (e *Exec) CloseStdin() error {
	pio := e.io.Load()
	if pio == nil {
		return nil
	}
	return pio.CloseStdin()
}
