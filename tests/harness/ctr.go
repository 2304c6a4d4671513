//go:build linux

package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// CtrTimeout bounds every ctr call made through MustCtr and the scenario helpers.
const CtrTimeout = 30 * time.Second

// Result is the outcome of one ctr invocation.
type Result struct {
	Args     []string
	Stdout   string
	Stderr   string
	ExitCode int   // -1 when ctr did not exit on its own
	Err      error // set when ctr could not be run or was killed by the timeout
}

func (r Result) String() string {
	s := fmt.Sprintf("ctr %s: exit %d", strings.Join(r.Args, " "), r.ExitCode)
	if r.Err != nil {
		s += fmt.Sprintf(" (%v)", r.Err)
	}
	if out := strings.TrimSpace(r.Stdout); out != "" {
		s += "\n  stdout: " + out
	}
	if errOut := strings.TrimSpace(r.Stderr); errOut != "" {
		s += "\n  stderr: " + errOut
	}
	return s
}

// Ctr runs this daemon's ctr against its socket and namespace, with stdin (nil: /dev/null).
func (d *Daemon) Ctr(ctx context.Context, stdin io.Reader, args ...string) Result {
	full := append([]string{"--address", d.Address, "--namespace", d.Namespace}, args...)
	cmd := exec.CommandContext(ctx, d.Spec.Ctr, full...)
	cmd.Env = d.Env()
	cmd.Stdin = stdin
	return runCtr(ctx, cmd, args)
}

// runCtr runs a ctr command and returns its Result (args as the caller gave them).
func runCtr(ctx context.Context, cmd *exec.Cmd, args []string) Result {
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// A killed ctr may leave its stdin copier blocked: do not wait for it forever.
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	r := Result{Args: args, Stdout: stdout.String(), Stderr: stderr.String(), ExitCode: -1}
	var exitErr *exec.ExitError
	switch {
	case err == nil:
		r.ExitCode = 0
	case ctx.Err() != nil:
		r.Err = fmt.Errorf("timed out: %w", ctx.Err())
	case errors.As(err, &exitErr) && exitErr.Exited():
		r.ExitCode = exitErr.ExitCode()
	default:
		r.Err = err
	}
	return r
}

// MustCtr runs ctr with CtrTimeout and fails t unless it exits 0.
func (d *Daemon) MustCtr(t testing.TB, args ...string) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), CtrTimeout)
	defer cancel()
	r := d.Ctr(ctx, nil, args...)
	if r.ExitCode != 0 || r.Err != nil {
		t.Fatalf("%s", r)
	}
	return r
}

// Task is a row of `ctr tasks ls`.
type Task struct {
	ID     string
	Pid    int
	Status string // RUNNING, STOPPED, CREATED, PAUSED, ...
}

// Tasks lists the tasks of the namespace.
func (d *Daemon) Tasks(t testing.TB) map[string]Task {
	t.Helper()
	out := d.MustCtr(t, "tasks", "ls").Stdout
	tasks := map[string]Task{}
	for _, line := range strings.Split(out, "\n")[1:] { // skip the TASK PID STATUS header
		f := strings.Fields(line)
		if len(f) != 3 {
			continue
		}
		pid, _ := strconv.Atoi(f[1])
		tasks[f[0]] = Task{ID: f[0], Pid: pid, Status: f[2]}
	}
	return tasks
}

// WaitTask polls `ctr tasks ls` until container id's task has status, up to timeout.
func (d *Daemon) WaitTask(t testing.TB, id, status string, timeout time.Duration) Task {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		task, ok := d.Tasks(t)[id]
		if ok && task.Status == status {
			return task
		}
		if time.Now().After(deadline) {
			t.Fatalf("task %s: want status %s within %s, have %+v (listed: %v)", id, status, timeout, task, ok)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
