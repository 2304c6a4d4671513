//go:build linux

package io

import (
	"errors"
	"fmt"
	stdio "io"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/console"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	"golang.org/x/sys/unix"
)

// DrainTimeout bounds how long Close waits for a terminal's output to end on its own (every
// process holding the terminal has exited and the pty is read empty) before it closes the pty
// master anyway: a grandchild that keeps the terminal open must not hang Delete.
var DrainTimeout = 2 * time.Second

// terminal copies between a process's terminal and its stdio destinations. Both directions run
// on Go's poller (epoll): the pty master, the stdin fifo and the output fifo or pipe are
// non-blocking, so an idle terminal costs two parked goroutines and no buffer (buffers come from
// bufPool only while data is moving), and closing a descriptor wakes the goroutine waiting on it.
type terminal struct {
	in  *os.File // the shim's read end of the stdin fifo; nil: no stdin. Set by Open.
	out *os.File // where output goes (fifo, file, logger pipe); nil: discarded. Set by Open.

	mu sync.Mutex
	// master is the pty master, nil before Attach and after it was closed. Guarded by mu.
	master *os.File
	// closed: close has run (or the terminal was hung up); Attach refuses. Guarded by mu.
	closed bool
	// outClosed: out was closed. Guarded by mu.
	outClosed bool
	// outDone and inDone are closed when the copiers end; nil before Attach.
	outDone, inDone chan struct{}
}

// Attach takes the pty master of a process started with a terminal (go-runc's console socket)
// and starts copying: pty → stdout destination, stdin fifo → pty. master is closed on return
// (the shim keeps its own descriptor); on error nothing stays open.
func (p *ProcessIO) Attach(master console.Console) error {
	defer func() { _ = master.Close() }()
	if p.term == nil {
		return fmt.Errorf("attach a terminal to a process without one: %w", errdefs.ErrFailedPrecondition)
	}
	fd, err := unix.FcntlInt(master.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("dup pty master: %w", err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		_ = unix.Close(fd)
		return fmt.Errorf("pty master: %w", err)
	}
	return p.term.attach(os.NewFile(uintptr(fd), "ptmx"))
}

func (c *terminal) attach(m *os.File) error {
	mrc, err := m.SyscallConn()
	if err != nil {
		_ = m.Close()
		return fmt.Errorf("pty master: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.master != nil {
		_ = m.Close()
		return fmt.Errorf("attach a terminal: already attached or closed: %w", errdefs.ErrFailedPrecondition)
	}
	c.master = m
	c.outDone, c.inDone = make(chan struct{}), make(chan struct{})
	go c.copyOut(mrc)
	var irc syscall.RawConn
	if c.in != nil {
		irc, err = c.in.SyscallConn()
	}
	if irc == nil || err != nil {
		close(c.inDone)
	} else {
		go c.copyIn(irc, m)
	}
	return nil
}

// copyOut copies the pty to the output destination until the pty reports that no process
// holds it any more (EIO, after every byte was read) or the master is closed.
func (c *terminal) copyOut(master syscall.RawConn) {
	defer close(c.outDone)
	defer c.closeOut()
	var total int64
	for {
		bp, n, err := readBatch(master)
		total += int64(n)
		if n > 0 && c.out != nil {
			_, werr := c.out.Write((*bp)[:n])
			if werr != nil {
				err = werr
			}
		}
		if bp != nil {
			bufPool.Put(bp)
		}
		if err != nil {
			log.L.WithError(err).Debugf("terminal output copy ended after %d bytes", total)
			return
		}
	}
}

// copyIn copies the stdin fifo to the pty. EOF on stdin (CloseIO, and the client closed its
// end) hangs the terminal up, as the reference shim does by closing its console: the session
// gets SIGHUP and the output copy ends.
func (c *terminal) copyIn(rc syscall.RawConn, master *os.File) {
	defer close(c.inDone)
	for {
		bp, n, err := readBatch(rc)
		if n > 0 {
			_, werr := master.Write((*bp)[:n])
			if werr != nil {
				err = werr
			}
		}
		if bp != nil {
			bufPool.Put(bp)
		}
		if errors.Is(err, stdio.EOF) {
			c.hangup()
			return
		}
		if err != nil {
			return
		}
	}
}

// readBatch waits (on the poller) until src is readable, then reads until it is empty, the
// buffer is full, or an error; buffers are taken from bufPool only once data is there. It returns
// the buffer (nil if nothing was read; the caller puts it back), the byte count and the error
// that ended the batch (io.EOF at end of file, EIO when a pty has no other side any more).
func readBatch(src syscall.RawConn) (*[]byte, int, error) {
	var (
		bp   *[]byte
		n    int
		rerr error
	)
	err := src.Read(func(fd uintptr) bool {
		if bp == nil {
			bp = bufPool.Get().(*[]byte)
		}
		buf := *bp
		for n < len(buf) {
			m, err := unix.Read(int(fd), buf[n:])
			switch {
			case err == unix.EINTR:
				continue
			case err == unix.EAGAIN:
				if n == 0 {
					return false // wait for data
				}
				return true
			case err != nil:
				rerr = err
				return true
			case m == 0:
				rerr = stdio.EOF
				return true
			}
			n += m
		}
		return true
	})
	if err != nil && rerr == nil {
		rerr = err // the descriptor was closed
	}
	if n == 0 && bp != nil {
		bufPool.Put(bp)
		bp = nil
	}
	return bp, n, rerr
}

// hangup closes the pty master: what a terminal's stdin EOF does.
func (c *terminal) hangup() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.master != nil {
		_ = c.master.Close()
		c.master = nil
	}
}

func (c *terminal) closeOut() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.out != nil && !c.outClosed {
		_ = c.out.Close()
		c.outClosed = true
	}
}

// resize sets the terminal's window size. Before Attach it is a no-op (as the reference's for a
// created exec); after the master was closed, FailedPrecondition.
func (c *terminal) resize(width, height uint16) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.master == nil {
		if c.closed || c.outDone != nil {
			return fmt.Errorf("resize: the terminal is closed: %w", errdefs.ErrFailedPrecondition)
		}
		return nil
	}
	rc, err := c.master.SyscallConn()
	if err != nil {
		return fmt.Errorf("resize: %w", err)
	}
	var ioErr error
	if err := rc.Control(func(fd uintptr) {
		ioErr = unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, &unix.Winsize{Row: height, Col: width})
	}); err != nil {
		return fmt.Errorf("resize: %w", err)
	}
	if ioErr != nil {
		return fmt.Errorf("resize the terminal: %w", ioErr)
	}
	return nil
}

// copying reports whether the output copy has started and not ended: something still holds the
// terminal.
func (c *terminal) copying() bool {
	c.mu.Lock()
	outDone := c.outDone
	c.mu.Unlock()
	if outDone == nil {
		return false
	}
	select {
	case <-outDone:
		return false
	default:
		return true
	}
}

// waitOut waits until the output copy has ended or deadline passes; at once if it never started.
func (c *terminal) waitOut(deadline time.Time) {
	c.mu.Lock()
	outDone := c.outDone
	c.mu.Unlock()
	if outDone == nil {
		return
	}
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case <-outDone:
	case <-t.C:
	}
}

// close waits, at most drain, for the output copy to end, then closes everything: the master
// (ending a copy still running), the stdin read end, the output destination. It returns once
// both copiers have stopped.
func (c *terminal) close(drain time.Duration) error {
	c.mu.Lock()
	outDone, inDone := c.outDone, c.inDone
	c.mu.Unlock()
	if outDone != nil && drain > 0 {
		t := time.NewTimer(drain)
		select {
		case <-outDone:
		case <-t.C:
		}
		t.Stop()
	}
	c.mu.Lock()
	c.closed = true
	var errs []error
	if c.master != nil {
		errs = append(errs, c.master.Close())
		c.master = nil
	}
	if c.in != nil {
		errs = append(errs, c.in.Close())
		c.in = nil
	}
	if c.out != nil && !c.outClosed {
		errs = append(errs, c.out.Close())
		c.outClosed = true
	}
	c.mu.Unlock()
	if outDone != nil {
		<-outDone
		<-inDone
	}
	return errors.Join(errs...)
}

// Resize sets the window size of the process's terminal. A process without a terminal has
// nothing to resize: FailedPrecondition (the caller decides what the Task API answers).
func (p *ProcessIO) Resize(width, height uint16) error {
	if p.term == nil {
		return fmt.Errorf("resize: no terminal: %w", errdefs.ErrFailedPrecondition)
	}
	return p.term.resize(width, height)
}
