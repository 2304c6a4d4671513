//go:build linux

package io

import (
	"errors"
	"fmt"
	"os"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
)

// isFifo reports whether f is a fifo (or pipe). It does not use f.Fd, which would make a
// non-blocking file blocking and take it off the poller.
func isFifo(f *os.File) bool {
	rc, err := f.SyscallConn()
	if err != nil {
		return false
	}
	var st unix.Stat_t
	var serr error
	if rc.Control(func(fd uintptr) { serr = unix.Fstat(int(fd), &st) }) != nil || serr != nil {
		return false
	}
	return st.Mode&unix.S_IFMT == unix.S_IFIFO
}

// outputPipeSize is the buffer the shim asks of an output fifo and of the pipe in front of it
// (copier). The copier moves pages in the kernel, so these buffers are all that lies between a
// write and the reader; the kernel's default of 64 KiB makes a fast writer and its reader take
// turns every 64 KiB. 256 KiB more than halves those switches (a plain pipe here: 1.4 GiB/s at
// 64 KiB, 2.2 GiB/s at 256 KiB; pipe → splice → fifo at 256 KiB runs as fast as a write into the
// fifo itself, and at 64 KiB a third slower). The pages are kernel memory only while output is
// in flight.
const outputPipeSize = 256 << 10

// growPipe raises fd's pipe buffer to outputPipeSize, never lowers it, and ignores a refusal
// (fs.pipe-max-size, a user's pipe quota): the size is a speed-up, not a requirement.
func growPipe(fd int) {
	if cur, err := unix.FcntlInt(uintptr(fd), unix.F_GETPIPE_SZ, 0); err == nil && cur < outputPipeSize {
		_, _ = unix.FcntlInt(uintptr(fd), unix.F_SETPIPE_SZ, outputPipeSize)
	}
}

var errNotFifo = fmt.Errorf("not a fifo: %w", errdefs.ErrInvalidArgument)

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
		return -1, errNotFifo
	}
	fd, err := unix.Open(path, flags|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	return fd, nil
}
