//go:build integration && linux

package tests

// The exit path: an exit is published once its process's output was read, and that
// wait is the process's own. One container's exit held by a slow reader must not hold up another
// container's exit in the same shim, and a process whose exit was reaped but not yet published
// must never be signalled by a pid the kernel may have given to another process.

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"

	"github.com/custom-shim/containerd-shim-custom-v1/internal/shimtest"
	"github.com/custom-shim/containerd-shim-custom-v1/tests/harness"
)

func init() {
	apiScenarios = append(apiScenarios,
		scenario{"exit-held-other-on-time", scenarioExitHeldOtherOnTime},
		scenario{"kill-reused-pid", scenarioKillReusedPid},
	)
}

// slowWriter takes what it is given at about 400 KiB/s: a client reading a fifo slowly, but
// steadily (the shim gives up on a reader that took nothing for 100 ms; containerd's client
// reads 32 KiB at a time).
type slowWriter struct {
	mu sync.Mutex
	n  int
}

func (w *slowWriter) Write(p []byte) (int, error) {
	time.Sleep(time.Duration(len(p)/1024) * 2500 * time.Microsecond)
	w.mu.Lock()
	w.n += len(p)
	w.mu.Unlock()
	return len(p), nil
}

func (w *slowWriter) bytes() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.n
}

// Two containers in one shim (one sandbox id): a's init writes 512 KiB, read slowly, and exits
// with a quarter of it unread, so its exit is held for its output; b's init exits once a's has
// been reaped, with nothing to read. b's exit is published at once, while a's is still held.
func scenarioExitHeldOtherOnTime(r *row) *observation {
	a := newAPIRow(r)
	group := []oci.SpecOpts{oci.WithAnnotations(map[string]string{"io.kubernetes.cri.sandbox-id": "chain-" + r.short})}
	type member struct {
		ctr  containerd.Container
		task containerd.Task
		ch   <-chan containerd.ExitStatus
	}
	start := func(role string, out *slowWriter, args ...string) member {
		id := a.id(role)
		ctr, err := a.NewContainer(a.ctx, a.c, id, a.runtime, group, args...)
		if err != nil {
			a.t.Fatalf("new container %s: %v", id, err)
		}
		creator := cio.NullIO
		if out != nil {
			creator = cio.NewCreator(cio.WithStreams(nil, out, out), cio.WithFIFODir(a.FifoDir))
		}
		task, ch := a.startTaskIO(ctr, creator)
		return member{ctr, task, ch}
	}
	out := &slowWriter{}
	held := start("chain-held", out, "sh", "-c", "head -c 524288 /dev/zero; exit 4")
	onTime := start("chain-ontime", nil, "sh", "-c", "while [ ! -e /go ]; do sleep 0.01; done; exit 3")
	heldPid := int(held.task.Pid())
	a.waitFor("the held container's init to be reaped", func() bool {
		_, err := os.Stat(fmt.Sprintf("/proc/%d", heldPid))
		return errors.Is(err, os.ErrNotExist)
	})
	if err := os.WriteFile(filepath.Join(a.Bundle(onTime.ctr.ID()), "rootfs", "go"), nil, 0o644); err != nil {
		a.t.Fatal(err)
	}
	st := <-onTime.ch
	delay := time.Since(st.ExitTime())
	var heldStill bool
	select {
	case hs := <-held.ch:
		held.ch = closedWith(hs)
	default:
		heldStill = true
	}
	a.t.Logf("on-time exit %d published %s after it happened; held container's exit still held: %v (%d of 524288 bytes read)",
		st.ExitCode(), delay.Round(time.Millisecond), heldStill, out.bytes())
	// A bound with room for a loaded machine; the held exit waits about 0.7 s for its reader.
	if delay > 300*time.Millisecond {
		a.t.Errorf("the exit of %s came %s after it happened, behind the exit held for its output", onTime.ctr.ID(), delay.Round(time.Millisecond))
	}
	hs := <-held.ch
	a.note("on-time exit %d, held exit %d", st.ExitCode(), hs.ExitCode())
	// Ours publishes an exit once the output is read from the fifo (the reference publishes at
	// once and lets its client's IO cancel drop the rest: containerd#8334): the row is only
	// worth something if that hold was on while the other exit came.
	if a.runtime == harness.RuntimeCustom {
		if !heldStill {
			a.t.Errorf("the exit of %s was published with its output unread", held.ctr.ID())
		}
		if n := out.bytes(); n < 524288-32768 { // the client's last 32 KiB read may be in hand
			a.t.Errorf("the held container's exit came with %d of 524288 bytes of its output taken", n)
		}
	}
	addr, _ := a.ShimAddress(held.ctr.ID())
	for _, m := range []member{onTime, held} {
		if _, err := m.task.Delete(a.ctx); err != nil {
			a.t.Fatalf("delete %s: %v", m.ctr.ID(), err)
		}
		a.deleteContainer(m.ctr)
	}
	if socket := strings.TrimPrefix(addr, "unix://"); socket != "" {
		r.expectGone(socket, "grouping/socket")
	}
	// The order of the two exit events is what differs by design (the reference publishes the
	// held exit at once); each container's own events are checked in order by events().
	a.events()
	return &observation{Notes: a.notes}
}

// closedWith is a channel that yields st.
func closedWith(st containerd.ExitStatus) <-chan containerd.ExitStatus {
	ch := make(chan containerd.ExitStatus, 1)
	ch <- st
	return ch
}

// An exec has exited and been reaped, but its exit is not published yet (its output is being
// read, slowly); its pid is given to a new host process. A Kill of the exec is NotFound, and the
// process that took the pid gets no signal.
func scenarioKillReusedPid(r *row) *observation {
	a := newAPIRow(r)
	ctr, task := a.running("reuse")
	out := &slowWriter{}
	p, ch := a.startExecSpec(task, "quick", a.processSpec(ctr, "sh", "-c", "head -c 307200 /dev/zero"),
		cio.NewCreator(cio.WithStreams(nil, out, out), cio.WithFIFODir(a.FifoDir)))
	pid := int(p.Pid())
	a.waitFor(fmt.Sprintf("exec pid %d to be reaped", pid), func() bool {
		_, err := os.Stat(fmt.Sprintf("/proc/%d", pid))
		return errors.Is(err, os.ErrNotExist)
	})
	stranger := shimtest.StartWithPid(a.t, pid, 100)
	defer func() { stranger.Process.Kill(); stranger.Wait() }()
	kerr := p.Kill(a.ctx, syscall.SIGKILL)
	published := len(ch) > 0
	time.Sleep(100 * time.Millisecond)
	alive := running(pid)
	a.t.Logf("kill after pid %d was reused: %v (exit published by then: %v); the new holder of the pid alive: %v", pid, kerr, published, alive)
	a.note("kill of the exited exec: %s; the process that took its pid alive: %v", class(kerr), alive)
	if !alive {
		a.t.Errorf("Kill of an exited exec killed the process that took its pid %d", pid)
	}
	st := <-ch
	a.deleteExec(p)
	a.note("exec exit %d", st.ExitCode())
	a.remove(ctr, task)
	return a.observation()
}

// running reports whether process pid exists and is not a zombie (a process killed but not yet
// waited for still answers signal 0).
func running(pid int) bool {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) state ...: comm may hold spaces and parentheses, the state follows the last ")".
	i := strings.LastIndexByte(string(raw), ')')
	return i >= 0 && i+2 < len(raw) && raw[i+2] != 'Z' && raw[i+2] != 'X'
}
