//go:build linux

package io

import (
	stdio "io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func mkfifo(t *testing.T, name string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := unix.Mkfifo(p, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func fdCount(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

func TestStdoutGoesStraightToFifo(t *testing.T) {
	out := mkfifo(t, "stdout")
	client, err := os.OpenFile(out, os.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	p, err := Open(Stdio{Stdout: out, Stderr: out}, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if p.child[1] != p.child[2] {
		t.Fatal("stdout and stderr on one fifo should share one descriptor")
	}
	if _, err := p.child[1].WriteString("hello"); err != nil {
		t.Fatal(err)
	}
	if err := p.CloseAfterStart(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	n, err := client.Read(buf)
	if err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("client read %q, %v", buf[:n], err)
	}
}

func TestStdinHeldUntilCloseStdin(t *testing.T) {
	in := mkfifo(t, "stdin")
	p, err := Open(Stdio{Stdin: in}, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	child := p.child[0]
	client, err := os.OpenFile(in, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.WriteString("hi"); err != nil {
		t.Fatal(err)
	}
	client.Close() // the client went away: no EOF yet, the shim still holds a writer
	buf := make([]byte, 2)
	if _, err := stdio.ReadFull(child, buf); err != nil || string(buf) != "hi" {
		t.Fatalf("read %q, %v", buf, err)
	}
	got := make(chan error, 1)
	go func() {
		_, err := child.Read(make([]byte, 1))
		got <- err
	}()
	select {
	case err := <-got:
		t.Fatalf("stdin ended before CloseStdin: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	if err := p.CloseStdin(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-got:
		if err != stdio.EOF {
			t.Fatalf("want EOF after CloseStdin, got %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no EOF after CloseStdin")
	}
}

func TestNullAndMissingStdioLeaveNoDescriptor(t *testing.T) {
	base := fdCount(t)
	p, err := Open(Stdio{}, Config{})
	if err != nil {
		t.Fatal(err)
	}
	if p.child[0] != nil || p.child[1] == nil || p.child[2] == nil {
		t.Fatal("null stdio: want /dev/null for stdout and stderr only")
	}
	p.Close()
	if _, err := Open(Stdio{Stdin: "/nonexistent/stdin"}, Config{}); err == nil {
		t.Fatal("missing stdin fifo accepted")
	}
	in := mkfifo(t, "in")
	if _, err := Open(Stdio{Stdin: in, Stdout: "/nonexistent/out"}, Config{}); err == nil {
		t.Fatal("missing stdout fifo accepted")
	}
	if got := fdCount(t); got != base {
		t.Fatalf("descriptors: %d before, %d after", base, got)
	}
}

func pipeSize(t *testing.T, f *os.File) int {
	t.Helper()
	n, err := unix.FcntlInt(f.Fd(), unix.F_GETPIPE_SZ, 0)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// The output fifo's buffer is raised to outputPipeSize (the container writes into it directly),
// and one already larger is left alone.
func TestOutputFifoBufferGrowsNeverShrinks(t *testing.T) {
	out, big := mkfifo(t, "stdout"), mkfifo(t, "stderr")
	client, err := os.OpenFile(out, os.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	bigClient, err := os.OpenFile(big, os.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer bigClient.Close()
	if _, err := unix.FcntlInt(bigClient.Fd(), unix.F_SETPIPE_SZ, 1<<20); err != nil {
		t.Fatal(err)
	}
	if n := pipeSize(t, client); n >= outputPipeSize {
		t.Fatalf("a new fifo already has %d bytes of buffer: the test shows nothing", n)
	}
	p, err := Open(Stdio{Stdout: out, Stderr: big}, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if n := pipeSize(t, client); n != outputPipeSize {
		t.Errorf("stdout fifo buffer %d, want %d", n, outputPipeSize)
	}
	if n := pipeSize(t, bigClient); n != 1<<20 {
		t.Errorf("stderr fifo buffer %d, want the 1 MiB it had", n)
	}
}
