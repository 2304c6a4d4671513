//go:build linux

package io

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	stdio "io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/console"
	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"

	"github.com/custom-shim/containerd-shim-custom-v1/internal/shimtest"
)

// newPty returns a pty master (for Attach) and its slave in raw mode: what the container sees.
func newPty(t *testing.T) (console.Console, *os.File) {
	t.Helper()
	master, name, err := console.NewPty()
	if err != nil {
		t.Fatal(err)
	}
	slave, err := os.OpenFile(name, os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		master.Close()
		t.Fatal(err)
	}
	if err := setRaw(slave); err != nil {
		t.Fatal(err)
	}
	return master, slave
}

// setRaw puts a terminal in raw mode (cfmakeraw(3)): no echo, no output processing.
func setRaw(f *os.File) error {
	fd := int(f.Fd())
	tio, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return err
	}
	tio.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	tio.Oflag &^= unix.OPOST
	tio.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	tio.Cflag &^= unix.CSIZE | unix.PARENB
	tio.Cflag |= unix.CS8
	tio.Cc[unix.VMIN], tio.Cc[unix.VTIME] = 1, 0
	return unix.IoctlSetTermios(fd, unix.TCSETS, tio)
}

// openClientFifo opens the client's read end of an output fifo (as containerd does).
func openClientFifo(t *testing.T, path string) *os.File {
	t.Helper()
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), path) // non-blocking: on Go's poller
	t.Cleanup(func() { f.Close() })
	return f
}

// readAll reads r to EOF in the background.
func readAll(r stdio.Reader) <-chan []byte {
	ch := make(chan []byte, 1)
	go func() {
		b, _ := stdio.ReadAll(r)
		ch <- b
	}()
	return ch
}

func recvWithin(t *testing.T, ch <-chan []byte, what string) []byte {
	t.Helper()
	select {
	case b := <-ch:
		return b
	case <-time.After(20 * time.Second):
		t.Fatalf("%s: no EOF", what)
		return nil
	}
}

func ptmxCount(t *testing.T) int {
	t.Helper()
	ents, _ := os.ReadDir("/proc/self/fd")
	n := 0
	for _, e := range ents {
		if l, _ := os.Readlink(filepath.Join("/proc/self/fd", e.Name())); l == "/dev/ptmx" || strings.HasPrefix(l, "/dev/pts/ptmx") {
			n++
		}
	}
	return n
}

// Every byte the process writes to its terminal reaches the stdout fifo, and the fifo reaches
// EOF once the process side of the terminal is closed.
func TestTerminalOutputComplete(t *testing.T) {
	out := mkfifo(t, "stdout")
	client := openClientFifo(t, out)
	p, err := Open(Stdio{Stdout: out, Stderr: out, Terminal: true}, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	master, slave := newPty(t)
	if err := p.Attach(master); err != nil {
		t.Fatal(err)
	}
	got := readAll(client)
	data := make([]byte, 8<<20)
	rand.Read(data)
	if _, err := slave.Write(data); err != nil {
		t.Fatal(err)
	}
	slave.Close() // the process exits
	b := recvWithin(t, got, "stdout fifo")
	if sha256.Sum256(b) != sha256.Sum256(data) {
		t.Fatalf("got %d bytes, want %d identical", len(b), len(data))
	}
}

// stdin reaches the terminal; CloseIO (CloseStdin) plus the client's close hang it up.
func TestTerminalStdinAndHangup(t *testing.T) {
	in, out := mkfifo(t, "stdin"), mkfifo(t, "stdout")
	client := openClientFifo(t, out)
	p, err := Open(Stdio{Stdin: in, Stdout: out, Terminal: true}, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	master, slave := newPty(t)
	defer slave.Close()
	if err := p.Attach(master); err != nil {
		t.Fatal(err)
	}
	got := readAll(client)
	w, err := os.OpenFile(in, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	w.WriteString("hello")
	buf := make([]byte, 5)
	if _, err := stdio.ReadFull(slave, buf); err != nil || string(buf) != "hello" {
		t.Fatalf("terminal read %q, %v", buf, err)
	}
	w.Close() // the client went away: the shim's write end keeps the terminal up
	slave.WriteString("still up")
	if err := p.CloseStdin(); err != nil {
		t.Fatal(err)
	}
	if b := recvWithin(t, got, "stdout after hangup"); !bytes.HasPrefix([]byte("still up"), b) {
		t.Errorf("stdout: %q", b)
	}
	if n, err := slave.Read(buf); err == nil && n > 0 {
		t.Errorf("terminal still readable after hangup: %q", buf[:n])
	}
	if err := p.Resize(80, 24); !errdefs.IsFailedPrecondition(err) {
		t.Errorf("resize after hangup: want FailedPrecondition, got %v", err)
	}
}

func TestTerminalResize(t *testing.T) {
	p, err := Open(Stdio{Terminal: true}, Config{}) // no stdout: output is discarded
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.Resize(10, 10); err != nil {
		t.Fatalf("resize before attach: %v", err)
	}
	master, slave := newPty(t)
	defer slave.Close()
	if err := p.Attach(master); err != nil {
		t.Fatal(err)
	}
	if err := p.Resize(132, 43); err != nil {
		t.Fatal(err)
	}
	ws, err := unix.IoctlGetWinsize(int(slave.Fd()), unix.TIOCGWINSZ)
	if err != nil || ws.Col != 132 || ws.Row != 43 {
		t.Fatalf("window size %+v, %v", ws, err)
	}
	slave.WriteString("discarded")
	np, _ := Open(Stdio{}, Config{})
	defer np.Close()
	if err := np.Resize(1, 1); !errdefs.IsFailedPrecondition(err) {
		t.Errorf("resize without terminal: want FailedPrecondition, got %v", err)
	}
}

// A process that keeps the terminal open (a grandchild) does not hang Close: it drains for at
// most DrainTimeout, then closes.
func TestTerminalCloseDrainIsBounded(t *testing.T) {
	old := DrainTimeout
	DrainTimeout = 200 * time.Millisecond
	t.Cleanup(func() { DrainTimeout = old })
	out := mkfifo(t, "stdout")
	client := openClientFifo(t, out)
	p, err := Open(Stdio{Stdout: out, Terminal: true}, Config{})
	if err != nil {
		t.Fatal(err)
	}
	master, slave := newPty(t)
	defer slave.Close()
	if err := p.Attach(master); err != nil {
		t.Fatal(err)
	}
	got := readAll(client)
	slave.WriteString("last words")
	done := make(chan error, 1)
	go func() { done <- p.Close() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close hung on a terminal still held open")
	}
	if b := recvWithin(t, got, "stdout"); string(b) != "last words" {
		t.Errorf("stdout: %q", b)
	}
}

// The console copy also feeds file:// and binary:// destinations.
func TestTerminalToFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tty.log")
	p, err := Open(Stdio{Stdout: "file://" + path, Terminal: true}, Config{})
	if err != nil {
		t.Fatal(err)
	}
	master, slave := newPty(t)
	if err := p.Attach(master); err != nil {
		t.Fatal(err)
	}
	slave.WriteString("to the file")
	slave.Close()
	if err := p.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
		t.Fatal(err)
	}
	if got := readFile(t, path); got != "to the file" {
		t.Errorf("log: %q", got)
	}
}

func TestTerminalToBinaryLogger(t *testing.T) {
	bin := writeLogger(t)
	dir := t.TempDir()
	p, err := Open(Stdio{Stdout: loggerURI("binary", bin, dir, "ready"), Terminal: true}, Config{ID: "c", Namespace: "n"})
	if err != nil {
		t.Fatal(err)
	}
	master, slave := newPty(t)
	if err := p.Attach(master); err != nil {
		t.Fatal(err)
	}
	l := p.logger
	slave.WriteString("via the logger")
	slave.Close()
	waitDone(t, l) // EOF on fd 3 and 4 once the copy ended: the logger finishes on its own
	p.Close()
	if got := readFile(t, filepath.Join(dir, "stdout")); got != "via the logger" {
		t.Errorf("logger stdout: %q", got)
	}
}

// No pty master, fifo or goroutine survives Close.
func TestTerminalNoDescriptorLeak(t *testing.T) {
	in, out := mkfifo(t, "stdin"), mkfifo(t, "stdout")
	client := openClientFifo(t, out)
	_ = client
	base, ptmx := shimtest.OpenFDs(t), ptmxCount(t)
	for range 50 {
		p, err := Open(Stdio{Stdin: in, Stdout: out, Terminal: true}, Config{})
		if err != nil {
			t.Fatal(err)
		}
		master, slave := newPty(t)
		if err := p.Attach(master); err != nil {
			t.Fatal(err)
		}
		slave.Close()
		p.Close()
	}
	if got := shimtest.OpenFDs(t); got != base {
		t.Errorf("descriptors: %d before, %d after", base, got)
	}
	if got := ptmxCount(t); got != ptmx {
		t.Errorf("pty masters: %d before, %d after", ptmx, got)
	}
}

// BenchmarkTerminalOutput measures the pty → stdout fifo copy.
func BenchmarkTerminalOutput(b *testing.B) {
	out := filepath.Join(b.TempDir(), "stdout")
	if err := unix.Mkfifo(out, 0o600); err != nil {
		b.Fatal(err)
	}
	fd, err := unix.Open(out, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		b.Fatal(err)
	}
	client := os.NewFile(uintptr(fd), out)
	defer client.Close()
	p, err := Open(Stdio{Stdout: out, Terminal: true}, Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	master, name, err := console.NewPty()
	if err != nil {
		b.Fatal(err)
	}
	slave, err := os.OpenFile(name, os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		b.Fatal(err)
	}
	if err := setRaw(slave); err != nil {
		b.Fatal(err)
	}
	if err := p.Attach(master); err != nil {
		b.Fatal(err)
	}
	chunk := make([]byte, 64<<10)
	b.SetBytes(int64(len(chunk)))
	go func() { _, _ = stdio.Copy(stdio.Discard, client) }()
	b.ResetTimer()
	for range b.N {
		if _, err := slave.Write(chunk); err != nil {
			b.Fatal(err)
		}
	}
	slave.Close()
}
