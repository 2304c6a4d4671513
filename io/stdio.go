//go:build linux

package io

import (
	"errors"
	"fmt"
	stdio "io"
	"os"
	"os/exec"
	"sync"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
)

// Stdio names the stdio streams a client asked for a process.
type Stdio struct {
	Stdin    string
	Stdout   string
	Stderr   string
	Terminal bool
}

// IsNull reports whether no stream was asked for.
func (s Stdio) IsNull() bool {
	return s.Stdin == "" && s.Stdout == "" && s.Stderr == ""
}

// ProcessIO owns the descriptors opened for one process's stdio. It implements go-runc's IO
// (Set hands the child ends to the runtime command) and StartCloser.
type ProcessIO struct {
	mu sync.Mutex
	// child holds the ends handed to the OCI runtime as its fds 0, 1 and 2 (nil: none or
	// /dev/null). Closed by CloseAfterStart. Guarded by mu.
	child [3]*os.File
	// stdin is the shim's own write end of the stdin fifo, held until CloseStdin. Guarded by mu.
	stdin *os.File
	// keep holds the read ends of the stdout/stderr fifos, closed by Close. Guarded by mu.
	keep []*os.File
}

// Open opens the stdio of a process that is not using a terminal. Streams that are not given
// are connected to /dev/null. On error nothing stays open.
func Open(s Stdio) (_ *ProcessIO, retErr error) {
	p := &ProcessIO{}
	defer func() {
		if retErr != nil {
			p.Close()
		}
	}()
	if s.Stdin != "" {
		if err := p.openStdin(s.Stdin); err != nil {
			return nil, err
		}
	}
	if s.Stdout != "" {
		w, err := p.openOutput(s.Stdout)
		if err != nil {
			return nil, err
		}
		p.child[1] = w
	}
	if s.Stderr != "" {
		if s.Stderr == s.Stdout {
			p.child[2] = p.child[1]
		} else {
			w, err := p.openOutput(s.Stderr)
			if err != nil {
				return nil, err
			}
			p.child[2] = w
		}
	}
	for i := 1; i < 3; i++ {
		if p.child[i] == nil {
			f, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
			if err != nil {
				return nil, err
			}
			p.child[i] = f
		}
	}
	return p, nil
}

// openStdin opens the stdin fifo: a blocking read end for the child and a write end kept by
// the shim. Opening the read end non-blocking first lets the write end open without waiting
// for the client.
func (p *ProcessIO) openStdin(path string) error {
	rfd, err := openFifo(path, unix.O_RDONLY|unix.O_NONBLOCK)
	if err != nil {
		return fmt.Errorf("open stdin fifo %s: %w", path, err)
	}
	r := os.NewFile(uintptr(rfd), path)
	p.child[0] = r
	if err := setBlocking(rfd); err != nil {
		return fmt.Errorf("stdin fifo %s: %w", path, err)
	}
	wfd, err := openFifo(path, unix.O_WRONLY)
	if err != nil {
		return fmt.Errorf("open stdin fifo %s for writing: %w", path, err)
	}
	p.stdin = os.NewFile(uintptr(wfd), path)
	return nil
}

// openOutput opens an output fifo: a read end the shim keeps, then the blocking write end for
// the child, which opens at once because a reader exists.
func (p *ProcessIO) openOutput(path string) (*os.File, error) {
	rfd, err := openFifo(path, unix.O_RDONLY|unix.O_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("open output fifo %s: %w", path, err)
	}
	p.keep = append(p.keep, os.NewFile(uintptr(rfd), path))
	wfd, err := openFifo(path, unix.O_WRONLY)
	if err != nil {
		return nil, fmt.Errorf("open output fifo %s for writing: %w", path, err)
	}
	return os.NewFile(uintptr(wfd), path), nil
}

// openFifo opens path, which must already be a fifo (the client creates it).
func openFifo(path string, flags int) (int, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return -1, fmt.Errorf("%w: %w", err, errdefs.ErrNotFound)
		}
		return -1, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFIFO {
		return -1, fmt.Errorf("not a fifo: %w", errdefs.ErrInvalidArgument)
	}
	fd, err := unix.Open(path, flags|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	return fd, nil
}

func setBlocking(fd int) error {
	flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil {
		return err
	}
	_, err = unix.FcntlInt(uintptr(fd), unix.F_SETFL, flags&^unix.O_NONBLOCK)
	return err
}

// Set hands the child ends to the runtime command as its stdio.
func (p *ProcessIO) Set(cmd *exec.Cmd) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.child[0] != nil {
		cmd.Stdin = p.child[0]
	}
	if p.child[1] != nil {
		cmd.Stdout = p.child[1]
	}
	if p.child[2] != nil {
		cmd.Stderr = p.child[2]
	}
}

// CloseAfterStart closes the shim's copies of the child ends once the runtime has started:
// from then on only the container holds them.
func (p *ProcessIO) CloseAfterStart() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closeChild()
}

func (p *ProcessIO) closeChild() error {
	var errs []error
	child := p.child
	p.child = [3]*os.File{}
	for i, f := range child {
		if f == nil || (i == 2 && f == child[1]) {
			continue
		}
		errs = append(errs, f.Close())
	}
	return errors.Join(errs...)
}

// CloseStdin releases the shim's write end of the stdin fifo (CloseIO): the process reads EOF
// once the client has closed its end too. Idempotent.
func (p *ProcessIO) CloseStdin() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stdin == nil {
		return nil
	}
	err := p.stdin.Close()
	p.stdin = nil
	return err
}

// Close releases every descriptor still held. Idempotent.
func (p *ProcessIO) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	errs := []error{p.closeChild()}
	if p.stdin != nil {
		errs = append(errs, p.stdin.Close())
		p.stdin = nil
	}
	for _, f := range p.keep {
		errs = append(errs, f.Close())
	}
	p.keep = nil
	return errors.Join(errs...)
}

// Stdin is part of go-runc's IO interface; the shim never writes to a process's stdin itself.
func (p *ProcessIO) Stdin() stdio.WriteCloser { return nil }

// Stdout is part of go-runc's IO interface; output goes straight to the client's fifo.
func (p *ProcessIO) Stdout() stdio.ReadCloser { return nil }

// Stderr is part of go-runc's IO interface; output goes straight to the client's fifo.
func (p *ProcessIO) Stderr() stdio.ReadCloser { return nil }
