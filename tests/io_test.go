//go:build integration && linux

package tests

import (
	"bytes"
	"context"
	"crypto/md5"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/console"
	"golang.org/x/sys/unix"

	"github.com/custom-shim/containerd-shim-custom-v1/tests/harness"
)

// ioScenarios cover every IO mode: terminals (run and exec, ResizePty, no pty leak), log URIs
// (file://, binary://, binary-v2://) and large outputs through fifos.
var ioScenarios = []scenario{
	{"tty-run-resize", scenarioTTYRun},
	{"tty-exec-resize", scenarioTTYExec},
	{"tty-output", scenarioTTYOutput},
	{"fifo-large-output", scenarioLargeOutput},
	{"log-file", scenarioLogFile},
	{"log-binary", scenarioLogBinary("binary")},
	{"log-binary-v2", scenarioLogBinary("binary-v2")},
	{"tty-no-pty-leak", scenarioPtyLeak},
}

func TestIO(t *testing.T) { runTable(t, ioScenarios) }

func init() {
	referenceBugs["containerd-1.6/log-binary-v2"] = "binary-v2:// is a containerd 2.2+ logging scheme: " +
		"the 1.6 reference shim rejects it, ours supports it with every daemon"
}

// ttyRows x ttyCols is the size of the terminal ctr runs in; ctr -t passes it on with ResizePty.
const ttyRows, ttyCols = 43, 132

// waitSized prints the terminal size once ResizePty has set it: a pty starts at 0 0 and ctr
// resizes only after Start.
// (busybox stty fails now and then while the size changes: that is retried too.)
const waitSized = `i=0; while s=$(stty size 2>/dev/null); [ "$s" = "0 0" -o -z "$s" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done; echo "$s"`

// ctrTTY runs ctr with a fresh pty of ttyRows x ttyCols as its controlling terminal and stdio
// (ctr -t needs one) and returns what it printed, without the \r that the two terminals add.
func (r *row) ctrTTY(args ...string) harness.Result {
	r.t.Helper()
	master, slavePath, err := console.NewPty()
	if err != nil {
		r.t.Fatal(err)
	}
	defer master.Close()
	if err := master.Resize(console.WinSize{Height: ttyRows, Width: ttyCols}); err != nil {
		r.t.Fatal(err)
	}
	slave, err := os.OpenFile(slavePath, os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		r.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), harness.CtrTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, r.Spec.Ctr, append([]string{"--address", r.Address, "--namespace", r.Namespace}, args...)...)
	cmd.Env = r.Env()
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		slave.Close()
		r.t.Fatal(err)
	}
	slave.Close()
	var out bytes.Buffer
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		_, _ = io.Copy(&out, master) // ends with EIO once ctr (the last slave holder) exits
	}()
	err = cmd.Wait()
	select {
	case <-copied:
	case <-time.After(5 * time.Second):
		r.t.Errorf("ctr's terminal still open 5s after ctr exited")
	}
	res := harness.Result{Args: args, Stdout: strings.ReplaceAll(out.String(), "\r", ""), ExitCode: cmd.ProcessState.ExitCode()}
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		res.Err = err
	}
	if ctx.Err() != nil {
		r.t.Fatalf("%s: timed out", res)
	}
	return res
}

// ctr run -t: the container's output reaches the client through the pty, the window size of
// the client's terminal reaches the container (ResizePty), and the tty is the process's stdio.
func scenarioTTYRun(r *row) *observation {
	id := r.id("tty-run")
	res := r.ctrTTY(r.runArgs("-t", "--rm", "--fifo-dir", r.FifoDir, harness.ImageBusybox.Ref, id,
		"sh", "-c", waitSized+"; tty; test -t 0 && test -t 1 && test -t 2 && echo all-tty")...)
	want := fmt.Sprintf("%d %d\n/dev/pts/0\nall-tty\n", ttyRows, ttyCols)
	if res.ExitCode != 0 || !strings.HasSuffix(res.Stdout, want) {
		r.t.Fatalf("want exit 0 and output ending %q, got %s", want, res)
	}
	return &observation{Stdout: want, ExitCode: res.ExitCode}
}

// ctr task exec -t: an exec with its own terminal, resized, into a running container.
func scenarioTTYExec(r *row) *observation {
	id := r.id("tty-exec")
	r.expect(r.ctr(nil, r.runArgs("-d", "--null-io", harness.ImageBusybox.Ref, id, "sleep", "1000")...), 0, "-")
	r.WaitTask(r.t, id, "RUNNING", eventTimeout)
	res := r.ctrTTY("tasks", "exec", "-t", "--exec-id", "tty1", "--fifo-dir", r.FifoDir, id,
		"sh", "-c", waitSized+"; test -t 0 && echo tty; exit 7")
	want := fmt.Sprintf("%d %d\ntty\n", ttyRows, ttyCols)
	if res.ExitCode != 7 || !strings.HasSuffix(res.Stdout, want) {
		r.t.Logf("output %q", res.Stdout)
		r.t.Fatalf("want exit 7 and output ending %q, got %s", want, res)
	}
	r.waitExit(id, "tty1", 7)
	obs := r.killAndDelete(id, "SIGKILL", 137)
	obs.Stdout = want
	return obs
}

// Output through a terminal is complete: 100000 lines, checked by count and checksum.
func scenarioTTYOutput(r *row) *observation {
	id := r.id("tty-out")
	res := r.ctrTTY(r.runArgs("-t", "--rm", "--fifo-dir", r.FifoDir, harness.ImageBusybox.Ref, id, "seq", "1", "100000")...)
	var want strings.Builder
	for i := 1; i <= 100000; i++ {
		fmt.Fprintf(&want, "%d\n", i)
	}
	if res.ExitCode != 0 || !strings.HasSuffix(res.Stdout, want.String()) {
		r.t.Fatalf("tty output: exit %d, %d bytes, want it to end with the %d bytes of seq 1 100000 (tail %q)",
			res.ExitCode, len(res.Stdout), want.Len(), tail(res.Stdout))
	}
	return &observation{Stdout: fmt.Sprintf("md5 %x", md5.Sum([]byte(want.String()))), ExitCode: res.ExitCode}
}

func tail(s string) string {
	if len(s) > 40 {
		return s[len(s)-40:]
	}
	return s
}

// A process that writes 20 MB and exits at once: every byte reaches ctr through the fifo.
func scenarioLargeOutput(r *row) *observation {
	id := r.id("large")
	res := r.ctr(nil, r.runArgs("--rm", "--fifo-dir", r.FifoDir, harness.ImageBusybox.Ref, id, "sh", "-c",
		"head -c 20000000 /dev/urandom > /tmp/r && md5sum /tmp/r | cut -d' ' -f1 && cat /tmp/r")...)
	sum, data, ok := strings.Cut(res.Stdout, "\n")
	if res.ExitCode != 0 || !ok || len(data) != 20000000 || fmt.Sprintf("%x", md5.Sum([]byte(data))) != sum {
		r.t.Fatalf("exit %d, %d bytes after the checksum line %q: want 20000000 with that md5", res.ExitCode, len(data), sum)
	}
	return &observation{Stdout: "20000000 bytes, md5 matches", ExitCode: res.ExitCode}
}

// --log-uri file:///abs: stdout and stderr are appended to one file.
func scenarioLogFile(r *row) *observation {
	id := r.id("log-file")
	path := filepath.Join(r.t.TempDir(), "logs", id+".log")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		r.t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("kept\n"), 0o644); err != nil {
		r.t.Fatal(err)
	}
	res := r.ctr(nil, r.runArgs("--rm", "--log-uri", "file://"+path, harness.ImageBusybox.Ref, id,
		"sh", "-c", "echo out; echo err >&2; echo out2")...)
	r.expect(res, 0, "")
	got, err := os.ReadFile(path)
	if err != nil {
		r.t.Fatal(err)
	}
	// The reference copies stdout and stderr in two goroutines, so their interleaving varies;
	// ours lets the container append to the file itself, which keeps the order of the writes.
	lines := strings.Split(strings.TrimSuffix(string(got), "\n"), "\n")
	slices.Sort(lines[1:])
	if want := []string{"kept", "err", "out", "out2"}; !slices.Equal(lines, want) {
		bug, known := referenceBugs[r.Spec.Name+"/log-file"]
		if !known || r.runtime != harness.RuntimeRunc || !slices.Equal(lines, []string{"kept", "out", "out2"}) {
			r.t.Fatalf("log file: %q; want the old content, then out, err and out2", got)
		}
		r.t.Logf("known reference bug, not failing the reference row: log file %q: %s", got, bug)
	}
	if r.runtime == harness.RuntimeCustom && string(got) != "kept\nout\nerr\nout2\n" {
		r.t.Errorf("log file: %q; want the writes in order", got)
	}
	return &observation{Stdout: strings.Join(lines, ","), ExitCode: res.ExitCode}
}

// ioLogger is a logging binary: it records its environment and arguments, signals ready as
// binary-v2 requires (a byte on fd 5), and copies fds 3 and 4 to files until EOF (ignoring the
// SIGTERM of Delete, so that what it wrote does not depend on timing).
const ioLogger = `#!/bin/sh
out="$2"
trap '' TERM
echo "$CONTAINER_ID $CONTAINER_NAMESPACE $1" > "$out/env"
printf x >&5
exec 5>&-
/bin/cat <&3 > "$out/stdout" &
/bin/cat <&4 > "$out/stderr"
wait
`

// --log-uri binary:///abs?dir=...: the shim runs the logger with the container's streams.
func scenarioLogBinary(scheme string) func(*row) *observation {
	return func(r *row) *observation {
		id := r.id("log-" + scheme)
		dir := r.t.TempDir()
		bin := filepath.Join(dir, "logger")
		if err := os.WriteFile(bin, []byte(ioLogger), 0o755); err != nil {
			r.t.Fatal(err)
		}
		res := r.ctr(nil, r.runArgs("--rm", "--log-uri", scheme+"://"+bin+"?dir="+dir, harness.ImageBusybox.Ref, id,
			"sh", "-c", "echo out; echo err >&2")...)
		if scheme == "binary-v2" && r.runtime == harness.RuntimeRunc && r.Spec.Name == "containerd-1.6" {
			// binary-v2:// came with containerd 2.2; the 1.6 reference shim does not know it.
			if res.ExitCode == 0 {
				r.t.Fatalf("the 1.6 reference shim accepted binary-v2://: %s", res)
			}
			return &observation{Notes: []string{"binary-v2:// rejected"}}
		}
		r.expect(res, 0, "")
		read := func(name string) string {
			b, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				r.t.Fatalf("logger output %s: %v", name, err)
			}
			return string(b)
		}
		if env, want := read("env"), id+" "+r.Namespace+" dir\n"; env != want {
			r.t.Errorf("logger environment and first argument: %q, want %q", env, want)
		}
		got := "stdout=" + read("stdout") + "stderr=" + read("stderr")
		if got != "stdout=out\nstderr=err\n" {
			r.t.Errorf("logger got %q", got)
		}
		return &observation{Stdout: got, ExitCode: res.ExitCode}
	}
}

// No pty master leaks: tty execs and tty containers grouped into one shim, created and deleted;
// the shim's /dev/ptmx descriptors return to their count before.
func scenarioPtyLeak(r *row) *observation {
	sandbox := "pty-" + r.short
	holder := r.id("pty-holder")
	r.expect(r.ctr(nil, r.runArgs("-d", "--null-io", "--annotation", "io.kubernetes.cri.sandbox-id="+sandbox,
		harness.ImageBusybox.Ref, holder, "sleep", "1000")...), 0, "-")
	r.WaitTask(r.t, holder, "RUNNING", eventTimeout)
	shim := r.expectShim()
	before := ptmxFds(r.t, shim.Pid)
	const execs, runs = 12, 4
	for i := range execs {
		res := r.ctrTTY("tasks", "exec", "-t", "--exec-id", fmt.Sprintf("t%d", i), "--fifo-dir", r.FifoDir, holder, "true")
		if res.ExitCode != 0 {
			r.t.Fatalf("tty exec %d: %s", i, res)
		}
	}
	for i := range runs {
		id := r.id(fmt.Sprintf("pty-run%d", i))
		res := r.ctrTTY(r.runArgs("-t", "--rm", "--fifo-dir", r.FifoDir, "--annotation", "io.kubernetes.cri.sandbox-id="+sandbox,
			harness.ImageBusybox.Ref, id, "true")...)
		if res.ExitCode != 0 {
			r.t.Fatalf("tty run %d: %s", i, res)
		}
	}
	after := ptmxFds(r.t, shim.Pid)
	if after != before {
		r.t.Errorf("shim %d holds %d /dev/ptmx descriptors after %d tty execs and %d tty containers, %d before",
			shim.Pid, after, execs, runs, before)
	}
	addr, err := r.ShimAddress(holder)
	if err != nil {
		r.t.Fatal(err)
	}
	r.killAndDeleteQuiet(holder)
	deadline := time.Now().Add(eventTimeout)
	for syscall.Kill(shim.Pid, 0) == nil {
		if time.Now().After(deadline) {
			r.t.Fatalf("shim %s still running after its last container was deleted", shim)
		}
		time.Sleep(50 * time.Millisecond)
	}
	r.expectGone(strings.TrimPrefix(addr, "unix://"), "grouping/socket")
	return &observation{Notes: []string{fmt.Sprintf("ptmx delta %d", after-before)}}
}

func ptmxFds(t *testing.T, pid int) int {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		if l, _ := os.Readlink(filepath.Join(dir, e.Name())); l == "/dev/ptmx" || l == "/dev/pts/ptmx" {
			n++
		}
	}
	return n
}
