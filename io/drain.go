//go:build linux

package io

import (
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// OutputHeld reports whether a process still holds the process's terminal or an output pipe
// the shim moves to a fifo (copier): Close will then cut that output.
func (p *ProcessIO) OutputHeld() bool {
	if p.term != nil && p.term.copying() {
		return true
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.copiers {
		if c.output && !c.eof.Load() {
			return true
		}
	}
	return false
}

// WaitOutputTaken waits until what the process wrote has been taken from the shim's side: with a
// terminal, until the copy of its output has ended (every holder of the terminal is gone and the
// pty read empty); then until its output pipes and fifos hold no unread byte. It gives up when
// nothing was read for stall, and after limit in all. A file:// output is waited for until the
// shim has written what its pipe held; a logging binary's pipes and /dev/null need no wait.
//
// Why: containerd's client, once it has a process's exit, deletes it, and that cancels its fifo
// readers (cio's Cancel closes them: containerd#8334), dropping whatever the fifo still holds. A
// `ctr run -t` lost up to 100 KB of the end of its output that way, with this shim and the
// reference alike; an exit published once the output is read leaves nothing there to drop.
func (p *ProcessIO) WaitOutputTaken(limit, stall time.Duration) {
	defer p.waited.Store(true)
	deadline := time.Now().Add(limit)
	if p.term != nil {
		p.term.waitOut(deadline)
	}
	p.mu.Lock()
	keep := append([]*os.File(nil), p.keep...)
	copiers := append([]*copier(nil), p.copiers...)
	p.mu.Unlock()
	if len(keep) == 0 && len(copiers) == 0 {
		return
	}
	waitRead(func() int {
		// Upstream first: bytes only move on from a copier's pipe to its fifo, so a byte that
		// moves between the two reads is counted once or twice, never missed.
		n := 0
		for _, c := range copiers {
			if c.output {
				n += c.unread()
			}
		}
		for _, f := range keep {
			n += fifoUnread(f)
		}
		return n
	}, deadline, stall)
}

// fifoUnread counts the unread bytes of a fifo read end; 0 if it cannot tell (closed).
func fifoUnread(f *os.File) int {
	rc, err := f.SyscallConn()
	if err != nil {
		return 0
	}
	var n int
	if rc.Control(func(fd uintptr) { n, err = unix.IoctlGetInt(int(fd), unix.TIOCINQ) }) != nil || err != nil {
		return 0
	}
	return n
}

// Polling of waitRead: a reader that takes the output at once is seen after a millisecond; one
// that takes longer is looked at less and less often (the count comes from a TIOCINQ per fifo:
// nothing tells when another process reads a fifo). Doubling up to 16 ms keeps an exec storm to
// a few dozen ioctls per second per exiting process.
const (
	readPollFirst = time.Millisecond
	readPollMax   = 16 * time.Millisecond
)

// waitRead waits, polling (readPollFirst, doubling up to readPollMax), until unread reports
// nothing left, its count has not moved for stall, or deadline passes.
func waitRead(unread func() int, deadline time.Time, stall time.Duration) {
	last, since := -1, time.Now()
	pause := readPollFirst
	for {
		n := unread()
		if n <= 0 {
			return
		}
		now := time.Now()
		switch {
		case n != last:
			last, since = n, now
		case now.Sub(since) >= stall:
			return
		}
		if now.After(deadline) {
			return
		}
		time.Sleep(pause)
		pause = min(2*pause, readPollMax)
	}
}
