//go:build integration && linux

package tests

// The request decides whether a process gets a terminal: containerd's Go
// client asks for one with cio.WithTerminal whatever the process spec says, and the reference
// shim runs an exec with a terminal then (it sets the spec's terminal from the request).

import (
	"os"
	"strconv"
	"strings"

	"github.com/containerd/containerd/v2/pkg/cio"

	"github.com/custom-shim/containerd-shim-custom-v1/tests/harness"
)

func init() {
	apiScenarios = append(apiScenarios,
		scenario{"exec-terminal-from-request", scenarioExecTerminalFromRequest},
		scenario{"init-terminal-from-request", scenarioInitTerminalFromRequest},
	)
	referenceBugs["containerd-2.4/init-terminal-from-request"] = "containerd-shim-runc-v2 2.4.2 gives runc a console " +
		"socket for a CreateTaskRequest with terminal = true but leaves the bundle's spec without a terminal: runc " +
		"refuses (\"cannot use console socket if runc will not detach or allocate tty\"); ours runs the init with the " +
		"terminal the request asked for, as the reference does for an exec"
	referenceBugs["containerd-1.6/init-terminal-from-request"] = referenceBugs["containerd-2.4/init-terminal-from-request"]
}

// ttyExecs is how many terminal execs of 1 MiB exec-terminal-from-request runs (CST_TTY_EXECS).
func ttyExecs() int {
	if n, err := strconv.Atoi(os.Getenv("CST_TTY_EXECS")); err == nil && n > 0 {
		return n
	}
	return 100
}

// ttyMiB is the output of every terminal exec: a line saying stdout is a terminal, then 1 MiB
// without a newline (a terminal turns "\n" into "\r\n").
var ttyMiB = []string{"sh", "-c", `test -t 1 && echo tty; head -c 1048576 /dev/zero | tr '\0' a`}

// An exec whose process spec has no terminal, asked for with one (cio.WithTerminal): it runs on
// a terminal, and 100 of them in a row deliver every byte of their 1 MiB.
func scenarioExecTerminalFromRequest(r *row) *observation {
	a := newAPIRow(r)
	ctr, task := a.running("ttyexec")
	spec := a.processSpec(ctr, ttyMiB...)
	spec.Terminal = false
	n, bad := ttyExecs(), 0
	for i := range n {
		var out syncBuffer
		// The spec has no terminal, the request asks for one.
		p, ch := a.startExecSpec(task, "tty"+strconv.Itoa(i), spec,
			cio.NewCreator(cio.WithStreams(nil, &out, nil), cio.WithTerminal, cio.WithFIFODir(a.FifoDir)))
		st := <-ch
		a.deleteExec(p)
		got := out.String()
		if st.ExitCode() != 0 || got != "tty\r\n"+strings.Repeat("a", 1<<20) {
			bad++
			a.t.Errorf("terminal exec %d: exit %d, %d bytes (prefix %q), want tty and 1 MiB", i, st.ExitCode(), len(got), got[:min(len(got), 8)])
		}
	}
	a.note("%d terminal execs of 1 MiB: %d incomplete", n, bad)
	a.remove(ctr, task)
	return a.observation()
}

// A container whose spec has no terminal, started with one (cio.WithTerminal on NewTask): its
// init runs on a terminal.
func scenarioInitTerminalFromRequest(r *row) *observation {
	a := newAPIRow(r)
	id := a.id("ttyinit")
	ctr, err := a.NewContainer(a.ctx, a.c, id, a.runtime, nil, "sh", "-c", "test -t 1 && echo tty || echo no tty")
	if err != nil {
		a.t.Fatalf("new container %s: %v", id, err)
	}
	var out syncBuffer
	task, err := ctr.NewTask(a.ctx, cio.NewCreator(cio.WithStreams(nil, &out, nil), cio.WithTerminal, cio.WithFIFODir(a.FifoDir)))
	a.note("create with a terminal: %s", class(err))
	if err != nil {
		if a.runtime == harness.RuntimeCustom {
			a.t.Errorf("create a container with a terminal its spec lacks: %v", err)
		}
		a.deleteContainer(ctr)
		return a.observation()
	}
	code := a.runCreated(task, nil)
	a.note("exit %d, stdout %q", code, out.String())
	if out.String() != "tty\r\n" {
		a.t.Errorf("init started with a terminal printed %q, want tty", out.String())
	}
	a.deleteContainer(ctr)
	return a.observation()
}
