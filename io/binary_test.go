//go:build linux

package io

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"

	"github.com/custom-shim/containerd-shim-custom-v1/internal/shimtest"
)

// loggerScript is a logging binary for tests. Args (sorted query keys): dir <dir> mode <mode>.
// Modes: ready (a byte on fd 5), eof (close fd 5), crash (exit before anything), hang (never
// ready), ignore-term (ready, then ignores SIGTERM), die (ready, reads 100 bytes of stdout, exits).
const loggerScript = `#!/bin/sh
out="$2"; mode="$4"
if [ "$mode" = ignore-term ]; then trap '' TERM; fi
echo "$CONTAINER_ID $CONTAINER_NAMESPACE $# $PATH" > "$out/env"
case $mode in
ready|ignore-term) printf x >&5 ;;
crash) exit 3 ;;
hang) exec /bin/sleep 60 ;;
die) printf x >&5; exec 5>&-; /usr/bin/head -c 100 <&3 > "$out/stdout"; exit 1 ;;
esac
exec 5>&-
/bin/cat <&3 > "$out/stdout" &
/bin/cat <&4 > "$out/stderr"
wait
echo done > "$out/exit"
if [ "$mode" = ignore-term ]; then exec /bin/sleep 60; fi
`

func writeLogger(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "logger")
	if err := os.WriteFile(p, []byte(loggerScript), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// loggerDir is a directory for a logger's files. A logger that failed its readiness is killed,
// but the cat it started may still create its file a moment later (the shim stops the logger,
// not what the logger started, as the reference does), so the cleanup tries again for a while.
func loggerDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "logger") //nolint:usetesting // t.TempDir fails its cleanup on a file created after its listing; this cleanup retries
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		var err error
		for range 100 {
			if err = os.RemoveAll(dir); err == nil {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Errorf("remove %s: %v", dir, err)
	})
	return dir
}

func loggerURI(scheme, bin, dir, mode string) string {
	return scheme + "://" + bin + "?dir=" + dir + "&mode=" + mode
}

func waitDone(t *testing.T, l *logger) {
	t.Helper()
	select {
	case <-l.done:
	case <-time.After(10 * time.Second):
		t.Fatal("logger did not exit")
	}
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestBinaryLoggerGetsStreamsAndEnv(t *testing.T) {
	bin := writeLogger(t)
	for _, tc := range []struct{ scheme, mode string }{
		{"binary", "ready"}, {"binary", "eof"}, {"binary-v2", "ready"},
	} {
		t.Run(tc.scheme+"-"+tc.mode, func(t *testing.T) {
			base := shimtest.OpenFDs(t)
			dir := t.TempDir()
			uri := loggerURI(tc.scheme, bin, dir, tc.mode)
			p, err := Open(Stdio{Stdout: uri, Stderr: uri}, Config{ID: "c1", Namespace: "ns1"})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := p.child[1].WriteString("to stdout\n"); err != nil {
				t.Fatal(err)
			}
			if _, err := p.child[2].WriteString("to stderr\n"); err != nil {
				t.Fatal(err)
			}
			if err := p.CloseAfterStart(); err != nil { // the container's ends: now only it held them
				t.Fatal(err)
			}
			waitDone(t, p.logger)
			if err := p.Close(); err != nil {
				t.Fatal(err)
			}
			if got := readFile(t, filepath.Join(dir, "env")); !strings.HasPrefix(got, "c1 ns1 4 ") {
				t.Errorf("logger env/args: %q, want CONTAINER_ID, CONTAINER_NAMESPACE and 4 args", got)
			}
			if got := readFile(t, filepath.Join(dir, "stdout")); got != "to stdout\n" {
				t.Errorf("stdout: %q", got)
			}
			if got := readFile(t, filepath.Join(dir, "stderr")); got != "to stderr\n" {
				t.Errorf("stderr: %q", got)
			}
			if got := shimtest.OpenFDs(t); got != base {
				t.Errorf("descriptors: %d before, %d after", base, got)
			}
		})
	}
}

func TestBinaryLoggerReadiness(t *testing.T) {
	bin := writeLogger(t)
	old := LoggerReadyTimeout
	LoggerReadyTimeout = 300 * time.Millisecond
	t.Cleanup(func() { LoggerReadyTimeout = old })
	for _, tc := range []struct {
		scheme, mode string
		ok           bool
	}{
		{"binary", "crash", true}, // EOF counts as ready for binary://, as with the reference
		{"binary-v2", "eof", false},
		{"binary-v2", "crash", false},
		{"binary", "hang", false},
		{"binary-v2", "hang", false},
	} {
		t.Run(tc.scheme+"-"+tc.mode, func(t *testing.T) {
			base := shimtest.OpenFDs(t)
			uri := loggerURI(tc.scheme, bin, loggerDir(t), tc.mode)
			p, err := Open(Stdio{Stdout: uri, Stderr: uri}, Config{ID: "c", Namespace: "n"})
			if tc.ok {
				if err != nil {
					t.Fatal(err)
				}
				p.Close()
			} else if !errdefs.IsUnavailable(err) || !strings.Contains(err.Error(), bin) {
				t.Fatalf("want Unavailable naming the logger, got %v", err)
			}
			if got := settledFdCount(t, base); got != base {
				t.Errorf("descriptors: %d before, %d after", base, got)
			}
		})
	}
	if _, err := Open(Stdio{Stdout: "binary:///nonexistent/logger"}, Config{}); !errdefs.IsInvalidArgument(err) {
		t.Errorf("missing logger binary: want InvalidArgument, got %v", err)
	}
}

func TestBinaryLoggerKilledAfterIgnoringSIGTERM(t *testing.T) {
	bin := writeLogger(t)
	old := LoggerStopTimeout
	LoggerStopTimeout = 300 * time.Millisecond
	t.Cleanup(func() { LoggerStopTimeout = old })
	uri := loggerURI("binary", bin, t.TempDir(), "ignore-term")
	p, err := Open(Stdio{Stdout: uri}, Config{})
	if err != nil {
		t.Fatal(err)
	}
	l := p.logger
	if err := p.Close(); err == nil || !strings.Contains(err.Error(), "ignored SIGTERM") {
		t.Errorf("Close: want the SIGKILL reported, got %v", err)
	}
	waitDone(t, l)
}

func TestFileURIAppendsBothStreamsToOneFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "c.log")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("before\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	base := shimtest.OpenFDs(t)
	uri := "file://" + path
	p, err := Open(Stdio{Stdout: uri, Stderr: uri}, Config{})
	if err != nil {
		t.Fatal(err)
	}
	if p.child[1] == nil || p.child[1] != p.child[2] {
		t.Fatal("file://: want one descriptor for stdout and stderr")
	}
	if link, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", p.child[1].Fd())); err != nil || !strings.HasPrefix(link, "pipe:") {
		t.Fatalf("file://: the process gets %q (%v), want a pipe (criu can dump a pipe, not a host file)", link, err)
	}
	p.child[1].WriteString("out\n")
	p.child[2].WriteString("err\n")
	// As after a process's exit: the exit is published once the output is written (the process
	// writes into a pipe the shim copies to the file), then Delete closes.
	p.CloseAfterStart()
	p.WaitOutputTaken(5*time.Second, time.Second)
	p.Close()
	if got := readFile(t, path); got != "before\nout\nerr\n" {
		t.Errorf("log file: %q", got)
	}
	if got := shimtest.OpenFDs(t); got != base {
		t.Errorf("descriptors: %d before, %d after", base, got)
	}
	// A missing directory is created.
	path2 := filepath.Join(t.TempDir(), "new", "dir", "c.log")
	p, err = Open(Stdio{Stdout: "file://" + path2}, Config{})
	if err != nil {
		t.Fatal(err)
	}
	p.Close()
	if _, err := os.Stat(path2); err != nil {
		t.Error(err)
	}
	if _, err := Open(Stdio{Stdout: "file://rel/c.log"}, Config{}); !errdefs.IsInvalidArgument(err) {
		t.Errorf("relative file:// path: want InvalidArgument, got %v", err)
	}
}

// A logger that dies mid-stream: the process's writes neither fail (EPIPE, or SIGPIPE in a
// container) nor block once the pipe would be full; the shim drains them. Close still works and
// leaves no descriptor behind.
func TestBinaryLoggerDyingMidStream(t *testing.T) {
	bin := writeLogger(t)
	base := shimtest.OpenFDs(t)
	dir := t.TempDir()
	uri := loggerURI("binary", bin, dir, "die")
	p, err := Open(Stdio{Stdout: uri, Stderr: uri}, Config{ID: "c1", Namespace: "ns1"})
	if err != nil {
		t.Fatal(err)
	}
	out, errOut := p.child[1], p.child[2]
	written := make(chan error, 1)
	go func() {
		chunk := []byte(strings.Repeat("y", 4096) + "\n")
		for range 512 { // 2 MiB: far more than two pipe buffers
			if _, err := out.Write(chunk); err != nil {
				written <- err
				return
			}
			if _, err := errOut.Write(chunk[:100]); err != nil {
				written <- err
				return
			}
		}
		written <- nil
	}()
	select {
	case err := <-written:
		if err != nil {
			t.Fatalf("write after the logger died: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("writes blocked after the logger died: nobody drains the pipe")
	}
	waitDone(t, p.logger)
	if got := readFile(t, filepath.Join(dir, "stdout")); len(got) != 100 {
		t.Errorf("logger read %d bytes before it died, want 100", len(got))
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if got := settledFdCount(t, base); got != base {
		t.Errorf("descriptors: %d before, %d after", base, got)
	}
}

// settledFdCount is the process's descriptor count once it is back to base, or after a second:
// with a logger that exited on its own, the runtime may close a descriptor of its start a
// moment after the logger's end is handled.
func settledFdCount(t *testing.T, base int) int {
	t.Helper()
	for range 100 {
		if n := shimtest.OpenFDs(t); n == base {
			return n
		}
		time.Sleep(10 * time.Millisecond)
	}
	return shimtest.OpenFDs(t)
}
