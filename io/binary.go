//go:build linux

package io

import (
	"errors"
	"fmt"
	stdio "io"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"time"

	"github.com/containerd/containerd/v2/pkg/sys/reaper"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	"golang.org/x/sys/unix"
)

// Bounds of a logging binary's life (variables so that tests can shorten them).
var (
	// LoggerReadyTimeout bounds the wait for a logger to signal that it is ready; the container
	// does not start before. The reference shim waits forever (kata#13410).
	LoggerReadyTimeout = 10 * time.Second
	// LoggerStopTimeout is how long a logger may take to exit after SIGTERM before SIGKILL (the
	// reference shim's binaryIOProcTermTimeout).
	LoggerStopTimeout = 12 * time.Second
	// loggerKillTimeout bounds the wait for a SIGKILLed logger to be reaped.
	loggerKillTimeout = 5 * time.Second
)

// logger is a logging binary (binary:// or binary-v2://) started by the shim. It gets the read
// ends of the process's stdout and stderr pipes as fds 3 and 4 and the write end of a ready pipe
// as fd 5, and CONTAINER_ID / CONTAINER_NAMESPACE in its environment (nothing else, as with the
// reference shim). It is a child of the shim: pkg/shim's SIGCHLD loop reaps it, so it is waited
// through reaper.Default, never exec.Cmd.Wait.
//
// The shim keeps its own read ends of the two pipes while the logger runs. Should the logger die
// before it is stopped, the shim drains them into the void: the container neither gets SIGPIPE
// nor blocks on a pipe nobody reads, it only loses that output (logged once). Without them a
// dead logger would take a writing container down with it (SIGPIPE).
type logger struct {
	cmd      *exec.Cmd
	id       string        // the container's id, for the log
	done     chan struct{} // closed once the logger has been reaped
	pipes    []*os.File    // the shim's read ends of the logger's stdout and stderr pipes
	stopping atomic.Bool   // set by stop and kill: an exit from then on is expected

	// procMu serialises signal with the release of cmd.Process once the logger was reaped
	// (where the kernel has no pidfds, os.Process.Release writes the Pid that Signal reads).
	procMu   sync.Mutex
	released bool // guarded by procMu
}

// startLogger starts the logger o.path and waits, at most LoggerReadyTimeout, until it is ready:
// for binary:// a byte or EOF on the ready pipe, for binary-v2:// a byte. stdout and stderr are
// the read ends it gets as fds 3 and 4; startLogger takes them over (closed by stop, or at once
// on error).
func startLogger(o output, cfg Config, stdout, stderr *os.File) (_ *logger, retErr error) {
	l := &logger{id: cfg.ID, done: make(chan struct{}), pipes: []*os.File{stdout, stderr}}
	rr, rw, err := os.Pipe()
	if err != nil {
		l.closePipes()
		return nil, fmt.Errorf("logger ready pipe: %w", err)
	}
	defer func() { _ = rr.Close() }()
	cmd := exec.Command(o.path, o.args...)
	cmd.Env = []string{"CONTAINER_ID=" + cfg.ID, "CONTAINER_NAMESPACE=" + cfg.Namespace}
	cmd.ExtraFiles = []*os.File{stdout, stderr, rw}
	ec, err := reaper.Default.Start(cmd)
	_ = rw.Close()
	if err != nil {
		l.closePipes()
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, os.ErrPermission) {
			err = fmt.Errorf("%w: %w", err, errdefs.ErrInvalidArgument)
		}
		return nil, fmt.Errorf("start logging binary %s: %w", o.path, err)
	}
	l.cmd = cmd
	go func() {
		defer close(l.done)
		status, _ := reaper.Default.Wait(cmd, ec)
		// The reaper reaped it, so cmd.Wait (inside Wait) failed with ECHILD and kept the
		// process's pidfd: release it now rather than at garbage collection.
		l.procMu.Lock()
		l.released = true
		_ = cmd.Process.Release()
		l.procMu.Unlock()
		if !l.stopping.Load() {
			log.L.WithFields(log.Fields{"id": l.id, "logger": o.path, "status": status}).
				Warn("logging binary exited before its process: the process's output is discarded from now on")
			l.discard()
		}
	}()
	defer func() {
		if retErr != nil {
			l.kill()
			l.closePipes()
		}
	}()
	if err := rr.SetReadDeadline(time.Now().Add(LoggerReadyTimeout)); err != nil {
		return nil, fmt.Errorf("logging binary %s: %w", o.path, err)
	}
	n, err := rr.Read(make([]byte, 1))
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		return nil, fmt.Errorf("logging binary %s did not signal ready (a byte or close of fd 5) within %s: %w",
			o.path, LoggerReadyTimeout, errdefs.ErrUnavailable)
	case err != nil && !errors.Is(err, stdio.EOF):
		return nil, fmt.Errorf("read ready pipe of logging binary %s: %w", o.path, err)
	case n == 0 && o.kind == kindBinaryV2:
		return nil, fmt.Errorf("logging binary %s closed fd 5 without signalling ready (binary-v2:// needs a byte; it may have crashed): %w",
			o.path, errdefs.ErrUnavailable)
	}
	return l, nil
}

// stop ends the logger: SIGTERM, then SIGKILL after LoggerStopTimeout. The caller has closed
// the shim's ends of its pipes first, so that it sees EOF and can flush.
func (l *logger) stop() error {
	l.stopping.Store(true)
	l.closePipes()
	select {
	case <-l.done:
		return nil
	default:
	}
	if err := l.signal(unix.SIGTERM); err != nil {
		select {
		case <-l.done: // exited (and released) meanwhile
			return nil
		default:
		}
		l.kill()
		return fmt.Errorf("SIGTERM logging binary %s: %w", l.cmd.Path, err)
	}
	t := time.NewTimer(LoggerStopTimeout)
	defer t.Stop()
	select {
	case <-l.done:
		return nil
	case <-t.C:
	}
	l.kill()
	return fmt.Errorf("logging binary %s ignored SIGTERM for %s: killed", l.cmd.Path, LoggerStopTimeout)
}

// signal sends sig to the logger unless it was reaped (os.ErrProcessDone then).
func (l *logger) signal(sig os.Signal) error {
	l.procMu.Lock()
	defer l.procMu.Unlock()
	if l.released {
		return os.ErrProcessDone
	}
	return l.cmd.Process.Signal(sig)
}

// kill SIGKILLs the logger and waits, bounded, until it is reaped.
func (l *logger) kill() {
	l.stopping.Store(true)
	_ = l.signal(unix.SIGKILL)
	t := time.NewTimer(loggerKillTimeout)
	defer t.Stop()
	select {
	case <-l.done:
	case <-t.C:
	}
}

// discard reads the pipes of a dead logger until their writers are gone (or stop closes them).
func (l *logger) discard() {
	for _, f := range l.pipes {
		go func() { _, _ = stdio.Copy(stdio.Discard, f) }()
	}
}

// closePipes closes the shim's read ends of the logger's pipes.
func (l *logger) closePipes() {
	for _, f := range l.pipes {
		_ = f.Close()
	}
}
