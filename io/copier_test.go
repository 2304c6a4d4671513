//go:build linux

package io

import (
	"bytes"
	"errors"
	stdio "io"
	"os"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/custom-shim/containerd-shim-custom-v1/internal/shimtest"
)

// openCopied opens a process's stdout and stderr on one fifo, and the client's
// reader of that fifo.
func openCopied(t *testing.T) (*ProcessIO, *os.File) {
	t.Helper()
	out := mkfifo(t, "stdout")
	client, err := os.OpenFile(out, os.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	if err := unix.SetNonblock(int(client.Fd()), false); err != nil {
		t.Fatal(err)
	}
	p, err := Open(Stdio{Stdout: out, Stderr: out}, Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p, client
}

// The process writes into a pipe; everything reaches the client's fifo, and the client reads EOF
// once the process's side is closed, as with the fifo itself.
func TestCopiedOutputReachesFifo(t *testing.T) {
	p, client := openCopied(t)
	var st unix.Stat_t
	if err := unix.Fstat(int(p.child[1].Fd()), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFIFO {
		t.Fatalf("child stdout is not a pipe: %v", err)
	}
	if p.child[1] != p.child[2] {
		t.Fatal("stdout and stderr on one fifo should share one pipe")
	}
	want := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB: more than the pipe holds
	go func() {
		p.child[1].Write(want)
		p.CloseAfterStart()
	}()
	got, err := stdio.ReadAll(client)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("client read %d bytes (%v), want %d", len(got), err, len(want))
	}
	if p.OutputHeld() {
		t.Fatal("output reported held after the process closed it")
	}
}

// A process left behind holds the pipe: the client gets no EOF until Close, which cuts the
// output whatever holds it.
func TestCopiedOutputCutAtClose(t *testing.T) {
	before := shimtest.OpenFDs(t)
	p, client := openCopied(t)
	held, err := unix.Dup(int(p.child[1].Fd())) // what `sleep 365d &` inherits
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if held >= 0 {
			unix.Close(held)
		}
	}()
	if _, err := p.child[1].WriteString("hello\n"); err != nil {
		t.Fatal(err)
	}
	if err := p.CloseAfterStart(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 6)
	if _, err := stdio.ReadFull(client, buf); err != nil || string(buf) != "hello\n" {
		t.Fatalf("client read %q, %v", buf, err)
	}
	if !p.OutputHeld() {
		t.Fatal("output not reported held while a process holds the pipe")
	}
	eof := make(chan error, 1)
	go func() {
		n, err := client.Read(buf)
		if n != 0 {
			err = nil
		}
		eof <- err
	}()
	select {
	case err := <-eof:
		t.Fatalf("client read returned (%v) while the output is held", err)
	case <-time.After(50 * time.Millisecond):
	}
	done := make(chan struct{})
	go func() { p.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("Close did not return while a process holds the output pipe")
	}
	select {
	case err := <-eof:
		if !errors.Is(err, stdio.EOF) {
			t.Fatalf("client read %v after Close, want EOF", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("client got no EOF after Close")
	}
	// The held write end now writes into a pipe nobody reads: EPIPE, not a block.
	if _, err := unix.Write(held, []byte("late")); !errors.Is(err, syscall.EPIPE) {
		t.Fatalf("write to the held pipe after Close: %v, want EPIPE", err)
	}
	client.Close()
	unix.Close(held)
	held = -1
	if after := shimtest.OpenFDs(t); after != before {
		t.Fatalf("descriptors: %d before, %d after Close", before, after)
	}
}

// WaitOutputTaken waits for what sits in the pipe, in the copier's hands and in the fifo, until
// the client has read it; it gives up on a client that stopped reading.
func TestWaitOutputTakenCopied(t *testing.T) {
	p, client := openCopied(t)
	data := bytes.Repeat([]byte("x"), 512<<10)
	go func() {
		p.child[1].Write(data)
		p.CloseAfterStart()
	}()
	time.Sleep(50 * time.Millisecond) // the pipe and the fifo fill up
	read := make(chan int, 1)
	go func() {
		n := 0
		buf := make([]byte, 4096)
		for {
			time.Sleep(time.Millisecond) // a slow reader, still moving
			m, err := client.Read(buf)
			n += m
			if err != nil {
				read <- n
				return
			}
		}
	}()
	start := time.Now()
	p.WaitOutputTaken(10*time.Second, 500*time.Millisecond)
	if took := time.Since(start); took > 9*time.Second {
		t.Fatalf("WaitOutputTaken took %s", took)
	}
	if n := p.copiers[0].unread() + fifoUnread(p.keep[0]); n != 0 {
		t.Fatalf("WaitOutputTaken returned with %d bytes unread", n)
	}
	if n := <-read; n != len(data) {
		t.Fatalf("client read %d bytes, want %d", n, len(data))
	}

	// A client that reads nothing: given up after the stall.
	q, _ := openCopied(t)
	if _, err := q.child[1].WriteString("nobody reads this"); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	q.WaitOutputTaken(5*time.Second, 100*time.Millisecond)
	if took := time.Since(start); took < 100*time.Millisecond || took > 2*time.Second {
		t.Fatalf("WaitOutputTaken with no reader took %s, want about the 100 ms stall", took)
	}
}
