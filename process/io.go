//go:build linux

package process

import (
	"context"
	"fmt"

	"github.com/containerd/errdefs"
	runc "github.com/containerd/go-runc"
	"github.com/containerd/log"

	shimio "github.com/custom-shim/containerd-shim-custom-v1/io"
)

// openIO opens a process's stdio and, for a terminal, the console socket the OCI runtime sends
// the pty master to (closed by the caller once the runtime call returned: closeSocket). name
// names the process in errors.
func openIO(name string, s shimio.Stdio, cfg shimio.Config) (*shimio.ProcessIO, *runc.Socket, error) {
	pio, err := shimio.Open(s, cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: stdio: %w", name, err)
	}
	if !s.Terminal {
		return pio, nil, nil
	}
	sock, err := runc.NewTempConsoleSocket()
	if err != nil {
		_ = pio.Close()
		return nil, nil, fmt.Errorf("%s: create console socket: %w", name, err)
	}
	return pio, sock, nil
}

// runtimeIO is what the OCI runtime command gets as stdio: nothing with a terminal (the
// process's stdio is the pty, sent over the console socket).
func runtimeIO(pio *shimio.ProcessIO) runc.IO {
	if pio == nil || pio.Terminal() {
		return nil
	}
	return pio
}

// attachConsole receives the pty master the runtime sent over sock and starts the copies. A
// no-op without a terminal.
func attachConsole(name string, pio *shimio.ProcessIO, sock *runc.Socket) error {
	if sock == nil {
		return nil
	}
	master, err := sock.ReceiveMaster()
	if err != nil {
		return fmt.Errorf("%s: receive the pty master: %w", name, err)
	}
	if err := pio.Attach(master); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// closeIO closes a process's stdio at its Delete, saying so in the log when a process it left
// behind still held its output: that output is cut (the client reads EOF) rather than wait.
func closeIO(ctx context.Context, pio *shimio.ProcessIO, cid, execID string) {
	if pio == nil {
		return
	}
	if pio.OutputHeld() {
		l := log.G(ctx).WithField("container_id", cid)
		if execID != "" {
			l = l.WithField("exec_id", execID)
		}
		l.Info("deleted while a process it left behind still holds its output: the output is closed")
	}
	_ = pio.Close()
}

func closeSocket(sock *runc.Socket) {
	if sock != nil {
		_ = sock.Close()
	}
}

// resizeIO resizes the terminal of a process. A process without a terminal answers nil, as the
// reference shim does (its Resize is a no-op when there is no console).
func resizeIO(name string, pio *shimio.ProcessIO, width, height uint32) error {
	if pio == nil || !pio.Terminal() {
		return nil
	}
	if err := pio.Resize(uint16(width), uint16(height)); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// Resize sets the window size of the container's terminal; nil without one.
func (i *Init) Resize(width, height uint32) error {
	return resizeIO("container "+i.id, i.io, width, height)
}

// Resize sets the window size of the exec's terminal; nil without one or before it started,
// FailedPrecondition once it has stopped (the reference: "cannot resize a stopped container").
func (e *Exec) Resize(width, height uint32) error {
	e.opMu.Lock()
	defer e.opMu.Unlock()
	if st := e.State(); st == Stopped || st == Deleted {
		return fmt.Errorf("%s is %s: cannot resize its terminal: %w", e.name(), st, errdefs.ErrFailedPrecondition)
	}
	return resizeIO(e.name(), e.io.Load(), width, height)
}

// consoleSocket is sock as go-runc's option: a nil interface, not a typed nil, without one.
func consoleSocket(sock *runc.Socket) runc.ConsoleSocket {
	if sock == nil {
		return nil
	}
	return sock
}
