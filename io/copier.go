//go:build linux

package io

import (
	"errors"
	"fmt"
	stdio "io"
	"os"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// copier moves what a process writes into a pipe on to the client's output fifo.
//
// Output normally goes straight to the client's fifo (no copy in the shim). That cannot work for
// an exec process: a process it leaves behind (`sh -c "sleep 365d &"`, an exec probe that
// backgrounds something) inherits the fifo's write end and keeps it open for as long as it
// lives, so the client never reads EOF; CRI's ExecSync then deletes the exec to release the
// output (drain_exec_sync_io_timeout) and its client waits forever for an EOF that no Delete in
// the shim can give. With a pipe in between, the shim holds the fifo's only write end and can
// close it at Delete, whatever still holds the pipe.
type copier struct {
	src *os.File // the shim's read end of the pipe; non-blocking, on Go's poller
	dst *os.File // the shim's write end of the client's fifo; non-blocking, on Go's poller
	// pending counts bytes read from src and not yet written to dst.
	pending atomic.Int64
	// eof: every writer of the pipe is gone and what it held was copied.
	eof  atomic.Bool
	done chan struct{} // closed when the copy ends

	closeOnce sync.Once
}

// newCopier makes the pipe for one output stream and starts copying it to dst, which it owns
// from then on. It returns the write end for the process.
func newCopier(dst *os.File) (*copier, *os.File, error) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return nil, nil, fmt.Errorf("output pipe: %w", err)
	}
	growPipe(p[1])
	if err := unix.SetNonblock(p[0], true); err != nil {
		_ = unix.Close(p[0])
		_ = unix.Close(p[1])
		return nil, nil, fmt.Errorf("output pipe: %w", err)
	}
	// A non-blocking descriptor becomes a pollable *os.File; the write end stays blocking, as a
	// process expects its stdout to be.
	c := &copier{src: os.NewFile(uintptr(p[0]), "|0"), dst: dst, done: make(chan struct{})}
	rc, err := c.src.SyscallConn()
	if err != nil {
		_ = c.src.Close()
		_ = unix.Close(p[1])
		return nil, nil, fmt.Errorf("output pipe: %w", err)
	}
	go c.run(rc)
	return c, os.NewFile(uintptr(p[1]), "|1"), nil
}

// run copies until the pipe reports EOF, a write fails or close ends it, then closes dst: the
// client reads EOF once every byte was written.
func (c *copier) run(src syscall.RawConn) {
	defer close(c.done)
	defer c.closeDst()
	for {
		bp, n, err := readBatch(src)
		if n > 0 {
			c.pending.Store(int64(n))
			_, werr := c.dst.Write((*bp)[:n])
			c.pending.Store(0)
			if werr != nil && err == nil {
				err = werr
			}
		}
		if bp != nil {
			bufPool.Put(bp)
		}
		if err != nil {
			if errors.Is(err, stdio.EOF) {
				c.eof.Store(true)
			}
			return
		}
	}
}

func (c *copier) closeDst() {
	c.closeOnce.Do(func() { _ = c.dst.Close() })
}

// unread counts the bytes the copy has not moved yet: in the pipe and in its hands.
func (c *copier) unread() int {
	n := c.pending.Load()
	if rc, err := c.src.SyscallConn(); err == nil {
		var q int
		var qerr error
		if rc.Control(func(fd uintptr) { q, qerr = unix.IoctlGetInt(int(fd), unix.TIOCINQ) }) == nil && qerr == nil {
			n += int64(q)
		}
	}
	return int(n)
}

// close ends the copy and releases both ends: the client's fifo reads EOF even while a process
// still holds the pipe. held reports whether one did (the copy had not reached EOF).
func (c *copier) close() (held bool) {
	held = !c.eof.Load()
	_ = c.src.Close()
	c.closeDst() // wakes a write blocked on a full fifo
	<-c.done
	return held
}
