//go:build linux

package pod

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// pipes owns the fds startHolder opens until it hands them on.
type pipes struct{ fs []*os.File }

// pipe2 returns a blocking pipe (close-on-exec).
func (p *pipes) pipe2() (r, w *os.File, err error) {
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_CLOEXEC); err != nil {
		return nil, nil, fmt.Errorf("pipe: %w", err)
	}
	r, w = os.NewFile(uintptr(fds[0]), "pipe-r"), os.NewFile(uintptr(fds[1]), "pipe-w")
	p.fs = append(p.fs, r, w)
	return r, w, nil
}

// osPipe returns a pipe whose ends the runtime polls.
func (p *pipes) osPipe() (r, w *os.File, err error) {
	r, w, err = os.Pipe()
	if err != nil {
		return nil, nil, fmt.Errorf("pipe: %w", err)
	}
	p.fs = append(p.fs, r, w)
	return r, w, nil
}

// keep takes f out of the set close closes.
func (p *pipes) keep(f *os.File) {
	for i, g := range p.fs {
		if g == f {
			p.fs[i] = nil
		}
	}
}

func (p *pipes) close() {
	for i, f := range p.fs {
		if f != nil {
			_ = f.Close()
			p.fs[i] = nil
		}
	}
}
