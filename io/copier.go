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

// copier moves a process's stdio between a pipe the process holds and the client's fifo, with
// splice(2): the kernel moves the pipe's pages on (no copy into the shim, no buffer in it). An
// output that is a regular file (file://, or an existing file named as stdout) cannot take a
// splice (it is opened O_APPEND), so that copy reads the pipe into a buffer and writes it.
//
// Every fifo or file stream of a process goes through one (stdin, stdout, stderr; not a logging
// binary's pipes, which are pipes already, and not a terminal, which has its own copier). Two
// reasons:
//   - checkpoint/restore: criu cannot dump a container whose fds are the client's fifos (they
//     lie on a mount outside the container: "Can't lookup mount=N for fd=0"), and cannot give
//     them back on restore. runc records pipes as external descriptors in the image
//     (descriptors.json) and hands the new task's pipes to criu to inherit on restore, so a
//     process whose stdio is pipes can be checkpointed and restored, as with the reference shim.
//   - a process an exec leaves behind (`sh -c "sleep 365d &"`) inherits its output and keeps it
//     open for as long as it lives, so a client given the fifo itself never reads EOF (CRI's
//     ExecSync waits for it forever). With a pipe in between, the shim holds the fifo's only
//     write end and can close it at Delete, whatever still holds the pipe.
//
// The fifo's buffer and the pipe's are both outputPipeSize, so a fast writer gets as far ahead
// of its reader as it did when it wrote into the fifo itself; docs/benchmarks.md has the
// stdout figures of both ways.
type copier struct {
	src *os.File // read from: the pipe's read end, or the stdin fifo's; non-blocking, on Go's poller
	dst *os.File // written to: the output fifo's write end, or the pipe's; non-blocking, on the poller
	// output: src is a pipe the process writes into (stdout, stderr); false for stdin.
	output bool
	// buffered: dst is a regular file, copied to through a buffer (read, then write).
	buffered bool
	// pending counts bytes a buffered copy has read and not written yet.
	pending atomic.Int64
	// eof: every writer of src is gone and what it held was moved on.
	eof  atomic.Bool
	done chan struct{} // closed when the copy ends

	closeOnce sync.Once
}

// newOutputCopier makes the pipe for one output stream and starts moving it to dst, the output
// fifo or file, which it owns from then on. It returns the pipe's write end, for the process.
func newOutputCopier(dst *os.File) (*copier, *os.File, error) {
	r, w, err := pipe(true)
	if err != nil {
		return nil, nil, err
	}
	c := &copier{src: r, dst: dst, output: true, buffered: !isFifo(dst), done: make(chan struct{})}
	if err := c.start(); err != nil {
		_ = w.Close()
		return nil, nil, err
	}
	return c, w, nil
}

// newInputCopier makes the pipe for stdin and starts moving src, the shim's read end of the
// stdin fifo, into it; it owns src from then on. It returns the pipe's read end, for the process.
func newInputCopier(src *os.File) (*copier, *os.File, error) {
	r, w, err := pipe(false)
	if err != nil {
		return nil, nil, err
	}
	c := &copier{src: src, dst: w, done: make(chan struct{})}
	if err := c.start(); err != nil {
		_ = r.Close()
		return nil, nil, err
	}
	return c, r, nil
}

// pipe makes a pipe of outputPipeSize; the shim's end (the read end for an output, the write end
// for stdin) is non-blocking, on Go's poller; the process's end stays blocking, as a process
// expects its stdio to be.
func pipe(output bool) (r, w *os.File, err error) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return nil, nil, fmt.Errorf("stdio pipe: %w", err)
	}
	growPipe(p[1])
	shim := p[1]
	if output {
		shim = p[0]
	}
	if err := unix.SetNonblock(shim, true); err != nil {
		_ = unix.Close(p[0])
		_ = unix.Close(p[1])
		return nil, nil, fmt.Errorf("stdio pipe: %w", err)
	}
	return os.NewFile(uintptr(p[0]), "|0"), os.NewFile(uintptr(p[1]), "|1"), nil
}

// start starts the copy; on error it closes both ends.
func (c *copier) start() error {
	src, err := c.src.SyscallConn()
	if err == nil {
		var dst syscall.RawConn
		if dst, err = c.dst.SyscallConn(); err == nil {
			go c.run(src, dst)
			return nil
		}
	}
	_ = c.src.Close()
	_ = c.dst.Close()
	close(c.done)
	return fmt.Errorf("stdio pipe: %w", err)
}

// run moves data until src reports EOF, a move fails or close ends it, then closes dst: the
// reader of dst reads EOF once every byte was moved.
func (c *copier) run(src, dst syscall.RawConn) {
	defer close(c.done)
	defer c.closeDst()
	for {
		var n int
		var err error
		if c.buffered {
			n, err = c.copyOnce(src)
		} else {
			n, err = spliceOnce(src, dst)
		}
		if err != nil {
			return
		}
		if n == 0 {
			c.eof.Store(true)
			return
		}
	}
}

// spliceChunk bounds one splice: more than a pipe of outputPipeSize holds.
const spliceChunk = 1 << 20

// spliceOnce waits (on the poller) until src has data and dst room, and moves what it can. It
// returns 0 and no error at EOF (src is empty and has no writer left). Each side is used only
// inside its own RawConn callback, so a concurrent close never hits a reused descriptor.
func spliceOnce(src, dst syscall.RawConn) (int, error) {
	var (
		n    int
		serr error
		full bool // src has data but dst has no room
	)
	move := func(sfd, dfd uintptr) {
		for {
			m, err := unix.Splice(int(sfd), nil, int(dfd), nil, spliceChunk, unix.SPLICE_F_MOVE|unix.SPLICE_F_NONBLOCK)
			if errors.Is(err, unix.EINTR) {
				continue
			}
			n, serr = int(m), err
			return
		}
	}
	err := src.Read(func(sfd uintptr) bool {
		if cerr := dst.Control(func(dfd uintptr) { move(sfd, dfd) }); cerr != nil {
			serr = cerr
			return true
		}
		if !errors.Is(serr, unix.EAGAIN) {
			return true
		}
		// EAGAIN: src is empty and has a writer, or dst is full. The kernel says EAGAIN for a
		// full dst even when src is empty with no writer left: that is EOF, and src will
		// never be readable again, so it is told by its hangup, looked at before its count
		// (no writer can come back to add more).
		hup := hungUp(sfd)
		if q, qerr := unix.IoctlGetInt(int(sfd), unix.TIOCINQ); qerr == nil && q > 0 {
			full = true
			return true
		}
		if hup {
			n, serr = 0, nil // EOF
			return true
		}
		return false // src is empty: wait for it
	})
	if err != nil {
		return 0, err // src was closed
	}
	if full {
		// Only this copier reads src, so its data is still there: wait until dst has room.
		err = dst.Write(func(dfd uintptr) bool {
			if cerr := src.Control(func(sfd uintptr) { move(sfd, dfd) }); cerr != nil {
				serr = cerr
				return true
			}
			return !errors.Is(serr, unix.EAGAIN)
		})
		if err != nil {
			return 0, err // dst was closed
		}
	}
	if serr != nil {
		return 0, serr
	}
	return n, nil
}

// copyOnce waits until src has data, reads what it holds (up to a buffer) and writes it to dst.
// It returns 0 and no error at EOF.
func (c *copier) copyOnce(src syscall.RawConn) (int, error) {
	bp, n, err := readBatch(src)
	if n > 0 {
		c.pending.Store(int64(n))
		_, werr := c.dst.Write((*bp)[:n])
		c.pending.Store(0)
		bufPool.Put(bp)
		if werr != nil {
			return 0, werr
		}
	}
	switch {
	case errors.Is(err, stdio.EOF):
		if n > 0 {
			return n, nil // the next read says EOF again
		}
		return 0, nil
	case err != nil:
		return 0, err
	}
	return n, nil
}

// hungUp reports whether the pipe or fifo read end fd has no writer left.
func hungUp(fd uintptr) bool {
	pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(pfd, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		return err == nil && n == 1 && pfd[0].Revents&unix.POLLHUP != 0
	}
}

func (c *copier) closeDst() {
	c.closeOnce.Do(func() { _ = c.dst.Close() })
}

// unread counts the bytes the copy has not moved yet: what the pipe holds, then what a buffered
// copy has in hand (in the order bytes move, so none is missed between the two reads).
func (c *copier) unread() int {
	n := 0
	if rc, err := c.src.SyscallConn(); err == nil {
		var q int
		var qerr error
		if rc.Control(func(fd uintptr) { q, qerr = unix.IoctlGetInt(int(fd), unix.TIOCINQ) }) == nil && qerr == nil {
			n += q
		}
	}
	return n + int(c.pending.Load())
}

// close ends the copy and releases both ends: the reader of dst reads EOF even while a process
// still holds the pipe. held reports whether one did (the copy had not reached EOF).
func (c *copier) close() (held bool) {
	held = !c.eof.Load()
	_ = c.src.Close()
	c.closeDst() // wakes a move waiting for room in dst
	<-c.done
	return held
}
