//go:build linux

package io

import (
	"errors"
	"fmt"
	stdio "io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/custom-shim/containerd-shim-custom-v1/internal/shimtest"
)

func mkfifo(t *testing.T, name string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := unix.Mkfifo(p, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// The process gets pipes, never the client's fifos: criu can dump a pipe (runc records it as an
// external descriptor and hands the new task's pipe back on restore), not a fifo on a mount
// outside the container. What the process writes reaches the client's fifo, what the client
// writes reaches the process.
func TestStdioReachesProcessAsPipes(t *testing.T) {
	in, out := mkfifo(t, "stdin"), mkfifo(t, "stdout")
	client, err := os.OpenFile(out, os.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	p, err := Open(Stdio{Stdin: in, Stdout: out, Stderr: out}, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if p.child[1] != p.child[2] {
		t.Fatal("stdout and stderr on one fifo should share one descriptor")
	}
	for i, f := range p.child {
		link, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", f.Fd()))
		if err != nil || !strings.HasPrefix(link, "pipe:") {
			t.Fatalf("the process's fd %d is %q (%v), want an anonymous pipe", i, link, err)
		}
	}
	if _, err := p.child[1].WriteString("hello"); err != nil {
		t.Fatal(err)
	}
	stdin, err := os.OpenFile(in, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	if _, err := stdin.WriteString("typed"); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 5)
	if _, err := stdio.ReadFull(p.child[0], got); err != nil || string(got) != "typed" {
		t.Fatalf("process read %q from stdin, %v", got, err)
	}
	if err := p.CloseAfterStart(); err != nil {
		t.Fatal(err)
	}
	if err := unix.SetNonblock(int(client.Fd()), false); err != nil {
		t.Fatal(err)
	}
	all, err := stdio.ReadAll(client)
	if err != nil || string(all) != "hello" {
		t.Fatalf("client read %q, %v; want hello, then EOF", all, err)
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
		if !errors.Is(err, stdio.EOF) {
			t.Fatalf("want EOF after CloseStdin, got %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no EOF after CloseStdin")
	}
}

func TestNullAndMissingStdioLeaveNoDescriptor(t *testing.T) {
	base := shimtest.OpenFDs(t)
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
	if got := shimtest.OpenFDs(t); got != base {
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

// unread is how many bytes the fifo at path holds that nobody has read.
func unread(t *testing.T, f *os.File) int {
	t.Helper()
	n, err := unix.IoctlGetInt(int(f.Fd()), unix.TIOCINQ)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// WaitOutputTaken waits while a client reads the fifo (here slowly: 4 KiB every 2 ms), until the
// fifo is empty; a fifo nobody reads costs only the stall; a reader that keeps taking a little
// is cut off at the limit.
func TestWaitOutputTaken(t *testing.T) {
	fill := func(t *testing.T, n int) (*ProcessIO, string) {
		t.Helper()
		out := mkfifo(t, "stdout")
		p, err := Open(Stdio{Stdout: out, Stderr: out}, Config{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close() })
		if _, err := p.child[1].Write(make([]byte, n)); err != nil {
			t.Fatal(err)
		}
		if err := p.CloseAfterStart(); err != nil {
			t.Fatal(err)
		}
		return p, out
	}
	reader := func(t *testing.T, path string, chunk int, every time.Duration) (read func() int) {
		t.Helper()
		f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NONBLOCK, 0)
		if err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		total := 0
		go func() {
			defer f.Close()
			buf := make([]byte, chunk)
			for {
				n, err := f.Read(buf)
				mu.Lock()
				total += n
				mu.Unlock()
				if err != nil {
					return
				}
				time.Sleep(every)
			}
		}()
		return func() int { mu.Lock(); defer mu.Unlock(); return total }
	}

	t.Run("read", func(t *testing.T) {
		const size = 200 << 10
		p, out := fill(t, size)
		read := reader(t, out, 4<<10, 2*time.Millisecond)
		p.WaitOutputTaken(5*time.Second, 100*time.Millisecond)
		if n := unread(t, p.keep[0]); n != 0 {
			t.Fatalf("returned with %d bytes unread (the reader had %d of %d)", n, read(), size)
		}
	})
	t.Run("nobody reads", func(t *testing.T) {
		p, _ := fill(t, 10<<10)
		start := time.Now()
		p.WaitOutputTaken(5*time.Second, 50*time.Millisecond)
		if took := time.Since(start); took < 50*time.Millisecond || took > time.Second {
			t.Fatalf("waited %s for a fifo nobody reads, want the 50 ms stall", took)
		}
	})
	t.Run("limit", func(t *testing.T) {
		p, out := fill(t, 200<<10)
		reader(t, out, 1, 5*time.Millisecond)
		start := time.Now()
		p.WaitOutputTaken(300*time.Millisecond, 100*time.Millisecond)
		if took := time.Since(start); took < 300*time.Millisecond || took > 2*time.Second {
			t.Fatalf("waited %s for a reader that keeps taking a little, want the 300 ms limit", took)
		}
	})
	t.Run("not a fifo", func(t *testing.T) {
		p, err := Open(Stdio{}, Config{})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		start := time.Now()
		p.WaitOutputTaken(5*time.Second, time.Second)
		if took := time.Since(start); took > 100*time.Millisecond {
			t.Fatalf("waited %s with no fifo output", took)
		}
	})
}
