//go:build linux

package io

import (
	"errors"
	"fmt"
	stdio "io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"

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

// Config is what Open needs besides the URIs.
type Config struct {
	// ID and Namespace are the container's, passed to logging binaries as CONTAINER_ID and
	// CONTAINER_NAMESPACE.
	ID, Namespace string
	// UID and GID (the IoUid/IoGid options) own the stdio fifos and the pipes handed to the
	// container, so that a process of a user-namespaced container can reopen /dev/stdout.
	// Zero: left alone.
	UID, GID uint32
}

// ProcessIO owns the descriptors opened for one process's stdio. Without a terminal it
// implements go-runc's IO (Set hands the child ends to the runtime command) and StartCloser;
// with one, see Attach.
type ProcessIO struct {
	mu sync.Mutex
	// child holds the ends handed to the OCI runtime as its fds 0, 1 and 2 (nil: none or
	// /dev/null). Closed by CloseAfterStart. Guarded by mu.
	child [3]*os.File
	// stdin is the shim's own write end of the stdin fifo, held until CloseStdin. Guarded by mu.
	stdin *os.File
	// keep holds the read ends of the stdout/stderr fifos, closed by Close. Guarded by mu.
	keep []*os.File
	// copiers move the process's stdio pipes to and from their fifos (copier); ended by Close.
	// Guarded by mu.
	copiers []*copier
	// logger is the logging binary of a binary:// URI, stopped by Close. Guarded by mu.
	logger *logger
	// term is the terminal copier; nil without a terminal. Set by Open, never changed.
	term *terminal
	// waited: WaitOutputTaken has run (the exit was published after it), so Close need not wait
	// for the terminal's output again.
	waited atomic.Bool
}

// Open opens the stdio of a process. Without a terminal, a fifo stream reaches the process as a
// pipe that a copier moves to or from the fifo (in the kernel: copier); the file:// file, the
// binary:// logger's pipes and /dev/null (for a stream not given) are handed to the process
// themselves. With a terminal it opens the same destinations for the console copier, which
// Attach starts. A logging binary is started and ready before Open returns. On error nothing
// stays open.
func Open(s Stdio, cfg Config) (_ *ProcessIO, retErr error) {
	out, err := parseOutput(s.Stdout)
	if err != nil {
		return nil, err
	}
	p := &ProcessIO{}
	defer func() {
		if retErr != nil {
			_ = p.Close()
		}
	}()
	if s.Terminal {
		p.term = &terminal{}
	}
	if s.Stdin != "" {
		if err := p.openStdin(s.Stdin); err != nil {
			return nil, err
		}
	}
	switch out.kind {
	case kindNull:
	case kindFifo:
		err = p.openFifos(out.path, s.Stderr)
	case kindFile:
		err = p.openFile(out.path)
	case kindBinary, kindBinaryV2:
		err = p.openLogger(out, cfg)
	}
	if err != nil {
		return nil, err
	}
	if out.kind == kindFifo && (cfg.UID != 0 || cfg.GID != 0) {
		if err := p.chown(cfg.UID, cfg.GID); err != nil {
			return nil, err
		}
	}
	if p.term == nil {
		for i := 1; i < 3; i++ {
			if p.child[i] == nil {
				f, err := os.OpenFile(os.DevNull, os.O_WRONLY|unix.O_CLOEXEC, 0)
				if err != nil {
					return nil, err
				}
				p.child[i] = f
			}
		}
	}
	return p, nil
}

// Terminal reports whether the process has a terminal.
func (p *ProcessIO) Terminal() bool { return p.term != nil }

// openStdin opens the stdin fifo: a read end for the console copier or for the copier that
// moves it into the process's stdin pipe (non-blocking, on Go's poller), and a write end kept by
// the shim. Opening the read end non-blocking first lets the write end open without waiting for
// the client; the copier starts only once the write end is open, because a fifo that has no
// writer reads as EOF.
func (p *ProcessIO) openStdin(path string) error {
	rfd, err := openFifo(path, unix.O_RDONLY|unix.O_NONBLOCK)
	if err != nil {
		return fmt.Errorf("open stdin fifo %s: %w", path, err)
	}
	r := os.NewFile(uintptr(rfd), path)
	wfd, err := openFifo(path, unix.O_WRONLY)
	if err != nil {
		_ = r.Close()
		return fmt.Errorf("open stdin fifo %s for writing: %w", path, err)
	}
	p.stdin = os.NewFile(uintptr(wfd), path)
	if p.term != nil {
		p.term.in = r
		return nil
	}
	c, pr, err := newInputCopier(r)
	if err != nil {
		return fmt.Errorf("stdin fifo %s: %w", path, err)
	}
	p.copiers = append(p.copiers, c)
	p.child[0] = pr
	return nil
}

// openFifos opens the stdout and stderr paths (fifos, or existing files appended to). With a
// terminal only stdout is used: the console merges both streams. Without one, a fifo gets a
// pipe moved to it (copier).
func (p *ProcessIO) openFifos(stdout, stderr string) error {
	w, err := p.openStream(stdout, p.term == nil)
	if err != nil {
		return err
	}
	if p.term != nil {
		p.term.out = w
		return nil
	}
	p.child[1] = w
	switch stderr {
	case "":
	case stdout:
		p.child[2] = w
	default:
		if p.child[2], err = p.openStream(stderr, true); err != nil {
			return err
		}
	}
	return nil
}

// openStream opens an output path (openOutput) and returns what is written to: the output itself
// (for the console copier), or with pipe, the write end of a pipe moved to it (copier).
func (p *ProcessIO) openStream(path string, pipe bool) (*os.File, error) {
	w, err := p.openOutput(path)
	if err != nil || !pipe {
		return w, err
	}
	c, pw, err := newOutputCopier(w)
	if err != nil {
		_ = w.Close()
		return nil, err
	}
	p.copiers = append(p.copiers, c)
	return pw, nil
}

// openOutput opens an output path. For a fifo: a read end the shim keeps (its writes never get
// EPIPE while containerd restarts), then the write end, which opens at once because a reader
// exists; non-blocking (on Go's poller) for the copier or the console copier. Anything else must
// be an existing file, opened for appending, as the reference shim does.
func (p *ProcessIO) openOutput(path string) (*os.File, error) {
	rfd, err := openFifo(path, unix.O_RDONLY|unix.O_NONBLOCK)
	if errors.Is(err, errNotFifo) {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("open output file %s: %w", path, err)
		}
		return f, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open output fifo %s: %w", path, err)
	}
	p.keep = append(p.keep, os.NewFile(uintptr(rfd), path))
	wfd, err := openFifo(path, unix.O_WRONLY|unix.O_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("open output fifo %s for writing: %w", path, err)
	}
	growPipe(wfd)
	return os.NewFile(uintptr(wfd), path), nil
}

// openFile opens a file:// destination: created if missing (with its directory), appended to,
// one open file description for stdout and stderr, written by one copier from one pipe (the
// process's stdout and stderr), so each write stays whole and in order. The process gets the
// pipe, not the file: criu cannot dump a host file outside the container, nor a fifo.
func (p *ProcessIO) openFile(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil { //nolint:gosec // the reference shim's modes: log readers are other users
		return fmt.Errorf("create directory of log file %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|unix.O_CLOEXEC, 0o644) //nolint:gosec // as the directory above
	if err != nil {
		return fmt.Errorf("open log file %s: %w", path, err)
	}
	if p.term != nil {
		p.term.out = f
		return nil
	}
	c, pw, err := newOutputCopier(f)
	if err != nil {
		return fmt.Errorf("log file %s: %w", path, err)
	}
	p.copiers = append(p.copiers, c)
	p.child[1], p.child[2] = pw, pw
	return nil
}

// openLogger makes the stdout and stderr pipes, starts the logging binary with their read ends
// (which the logger keeps: see logger) and waits until it is ready. The write ends go to the container, or, with a terminal, stdout's
// to the console copier (stderr's is closed at once: a console has one output stream).
func (p *ProcessIO) openLogger(o output, cfg Config) error {
	outR, outW, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("logger stdout pipe: %w", err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		_ = outR.Close()
		_ = outW.Close()
		return fmt.Errorf("logger stderr pipe: %w", err)
	}
	if p.term != nil {
		p.term.out = outW
		_ = errW.Close()
	} else {
		p.child[1], p.child[2] = outW, errW
	}
	l, err := startLogger(o, cfg, outR, errR)
	if err != nil {
		return err
	}
	p.logger = l
	return nil
}

// chown gives the pipe ends handed to the container to uid:gid (IoUid/IoGid), as the reference
// shim does with its pipes.
func (p *ProcessIO) chown(uid, gid uint32) error {
	for _, f := range p.child {
		var st unix.Stat_t
		if f == nil || unix.Fstat(int(f.Fd()), &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFIFO {
			continue // a client's existing file is not ours to give away
		}
		if err := unix.Fchown(int(f.Fd()), int(uid), int(gid)); err != nil {
			return fmt.Errorf("chown stdio %s to %d:%d: %w", f.Name(), uid, gid, err)
		}
	}
	return nil
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
// once the client has closed its end too. With a terminal, that EOF hangs the terminal up, as
// with the reference shim. Idempotent.
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

// Close releases every descriptor still held: with a terminal after a bounded drain of its
// output (DrainTimeout; none if WaitOutputTaken has waited for it already), then stops the
// logging binary (SIGTERM, SIGKILL after LoggerStopTimeout). Output a process still holds is cut
// (OutputHeld). Idempotent.
func (p *ProcessIO) Close() error {
	var errs []error
	if p.term != nil {
		drain := DrainTimeout
		if p.waited.Load() {
			drain = 0
		}
		errs = append(errs, p.term.close(drain))
	}
	p.mu.Lock()
	errs = append(errs, p.closeChild())
	if p.stdin != nil {
		errs = append(errs, p.stdin.Close())
		p.stdin = nil
	}
	copiers := p.copiers
	p.copiers = nil
	for _, c := range copiers {
		c.close()
	}
	for _, f := range p.keep {
		errs = append(errs, f.Close())
	}
	p.keep = nil
	l := p.logger
	p.logger = nil
	p.mu.Unlock()
	if l != nil {
		errs = append(errs, l.stop())
	}
	return errors.Join(errs...)
}

// Stdin is part of go-runc's IO interface; the shim never writes to a process's stdin itself.
func (p *ProcessIO) Stdin() stdio.WriteCloser { return nil }

// Stdout is part of go-runc's IO interface; the shim reads no output through go-runc.
func (p *ProcessIO) Stdout() stdio.ReadCloser { return nil }

// Stderr is part of go-runc's IO interface; the shim reads no output through go-runc.
func (p *ProcessIO) Stderr() stdio.ReadCloser { return nil }
