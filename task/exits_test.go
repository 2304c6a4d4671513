//go:build linux

package task

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	eventstypes "github.com/containerd/containerd/api/events"
	"github.com/containerd/errdefs"
	runc "github.com/containerd/go-runc"

	shimio "github.com/custom-shim/containerd-shim-custom-v1/io"
	"github.com/custom-shim/containerd-shim-custom-v1/process"
)

// fakeProc is a process.Process with a fixed pid.
type fakeProc struct {
	id     string
	pid    int
	mu     sync.Mutex
	exited bool
	reaped bool
	status int
	done   chan struct{}
	// output, if set, is what WaitOutputTaken waits on: closed once the output "was read".
	output chan struct{}
}

func newFake(id string, pid int) *fakeProc {
	return &fakeProc{id: id, pid: pid, done: make(chan struct{})}
}

func (f *fakeProc) ID() string { return f.id }
func (f *fakeProc) Pid() int   { return f.pid }
func (f *fakeProc) State() process.State {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.exited {
		return process.Stopped
	}
	return process.Running
}
func (f *fakeProc) Exit() (int, time.Time) { return f.status, time.Time{} }
func (f *fakeProc) Done() <-chan struct{}  { return f.done }
func (f *fakeProc) SetExited(status int, _ time.Time) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.exited {
		return false
	}
	f.exited, f.status = true, status
	close(f.done)
	return true
}
func (f *fakeProc) Stdio() shimio.Stdio                      { return shimio.Stdio{} }
func (f *fakeProc) Start(context.Context) error              { return nil }
func (f *fakeProc) Kill(context.Context, uint32, bool) error { return nil }
func (f *fakeProc) Delete(context.Context) error             { return nil }
func (f *fakeProc) CloseStdin() error                        { return nil }
func (f *fakeProc) MarkReaped() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	was := f.reaped
	f.reaped = true
	return !was
}
func (f *fakeProc) WaitOutputTaken() {
	if f.output != nil {
		<-f.output
	}
}

func TestRouterRoutesRegisteredExit(t *testing.T) {
	r := newExitRouter()
	p := &routed{p: newFake("a", 10)}
	w := r.Open(nil)
	if _, exited := w.Close(p); exited {
		t.Fatal("no exit happened, yet one was reported")
	}
	if got := r.Route(runc.Exit{Pid: 11}); len(got) != 0 {
		t.Fatalf("exit of another pid routed to %v", got)
	}
	got := r.Route(runc.Exit{Pid: 10, Status: 3})
	if len(got) != 1 || got[0].p != p.p {
		t.Fatalf("exit not routed: %v", got)
	}
	if got := r.Route(runc.Exit{Pid: 10}); len(got) != 0 {
		t.Fatal("an exit was routed twice")
	}
}

func TestRouterEarlyExitCapturedByWindow(t *testing.T) {
	r := newExitRouter()
	p := &routed{p: newFake("a", 20)}
	w := r.Open(nil)
	// The process exits before its start call has returned: nothing is registered yet.
	if got := r.Route(runc.Exit{Pid: 20, Status: 0}); len(got) != 0 {
		t.Fatalf("early exit routed to %v", got)
	}
	e, exited := w.Close(p)
	if !exited || e.Pid != 20 {
		t.Fatalf("early exit not returned by Close: %v %v", e, exited)
	}
	if got := r.Route(runc.Exit{Pid: 20}); len(got) != 0 {
		t.Fatal("process with a captured exit was registered")
	}
	if len(r.windows) != 0 {
		t.Fatal("window left open")
	}
}

func TestRouterHoldMovesInitIntoWindow(t *testing.T) {
	r := newExitRouter()
	init := &routed{p: newFake("c", 30), init: true}
	r.Open(nil).Close(init) // registered at create
	w := r.Open(init)       // start: init's exit must now be captured
	if got := r.Route(runc.Exit{Pid: 30, Status: 137}); len(got) != 0 {
		t.Fatal("held init's exit was routed instead of captured")
	}
	if e, exited := w.Close(init); !exited || e.Status != 137 {
		t.Fatalf("held exit not returned: %v %v", e, exited)
	}
}

func TestGateHoldsInitExitUntilExecsLeave(t *testing.T) {
	var g execGate
	var order []string
	if err := g.enter("c", "e1"); err != nil {
		t.Fatal(err)
	}
	if err := g.enter("c", "e2"); err != nil {
		t.Fatal(err)
	}
	g.initExited(func() { order = append(order, "init") })
	if len(order) != 0 {
		t.Fatal("init exit published while execs run")
	}
	if err := g.enter("c", "e3"); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("exec start after init exit: %v", err)
	}
	order = append(order, "e1")
	g.leave()
	order = append(order, "e2")
	g.leave()
	want := []string{"e1", "e2", "init"}
	if len(order) != 3 || order[2] != "init" {
		t.Fatalf("order %v, want %v", order, want)
	}
}

func TestGateInitExitWithoutExecs(t *testing.T) {
	var g execGate
	published := false
	g.initExited(func() { published = true })
	if !published {
		t.Fatal("init exit held with no exec running")
	}
}

func TestExitQueueOrderAndClose(t *testing.T) {
	q := newExitQueue()
	go func() {
		for i := 1; i <= 1000; i++ {
			q.push(runc.Exit{Pid: i})
		}
		q.close()
	}()
	next := 1
	for {
		batch, ok := q.pop()
		if !ok {
			break
		}
		for _, e := range batch {
			if e.Pid != next {
				t.Fatalf("got pid %d, want %d", e.Pid, next)
			}
			next++
		}
	}
	if next != 1001 {
		t.Fatalf("drained %d exits, want 1000", next-1)
	}
}

// recorder is an eventSink that records topics.
type recorder struct {
	mu     sync.Mutex
	topics []string
	exits  []string // ids of published TaskExit events
}

func (r *recorder) deliver(_ context.Context, e queuedEvent) error {
	r.mu.Lock()
	r.topics = append(r.topics, e.topic)
	if x, ok := e.event.(*eventstypes.TaskExit); ok {
		r.exits = append(r.exits, x.ID)
	}
	r.mu.Unlock()
	return nil
}

func TestHandleExitPublishesOnceInOrder(t *testing.T) {
	rec := &recorder{}
	s := &service{events: newEventQueue(), router: newExitRouter()}
	go s.events.forward(context.Background(), rec)
	c := &container{id: "c"}
	init := routed{c: c, p: newFake("c", 1), init: true}
	exec := routed{c: c, p: newFake("e", 2)}
	if err := c.gate.enter("c", "e"); err != nil {
		t.Fatal(err)
	}
	s.handleExit(init, runc.Exit{Pid: 1, Status: 137})
	s.handleExit(init, runc.Exit{Pid: 1, Status: 137}) // a duplicate must not publish again
	s.handleExit(exec, runc.Exit{Pid: 2})
	<-init.p.Done()
	s.events.closeAndFlush()
	if len(rec.exits) != 2 || rec.exits[0] != "e" || rec.exits[1] != "c" {
		t.Fatalf("published exits %v (topics %v), want [e c]", rec.exits, rec.topics)
	}
	if st, _ := init.p.Exit(); st != 137 {
		t.Fatalf("init status %d", st)
	}
}

// One container's exit held by its unread output does not hold up another container's exit (the
// dispatcher only records exits; each is published on its own), and a held init exit still comes
// after its execs'.
func TestExitHeldByOutputHoldsNoOtherContainer(t *testing.T) {
	rec := &recorder{}
	s := &service{events: newEventQueue(), router: newExitRouter()}
	go s.events.forward(context.Background(), rec)
	a, b := &container{id: "a"}, &container{id: "b"}
	slow := newFake("a", 1)
	slow.output = make(chan struct{}) // its output is not read until released
	s.handleExit(routed{c: a, p: slow, init: true}, runc.Exit{Pid: 1})
	execB := newFake("b-exec", 3)
	if err := b.gate.enter("b", "b-exec"); err != nil {
		t.Fatal(err)
	}
	initB := newFake("b", 2)
	s.handleExit(routed{c: b, p: initB, init: true}, runc.Exit{Pid: 2, Status: 3})
	s.handleExit(routed{c: b, p: execB}, runc.Exit{Pid: 3})
	select {
	case <-initB.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("container b's exit is held by container a's unread output")
	}
	select {
	case <-slow.Done():
		t.Fatal("container a's exit was published before its output was read")
	default:
	}
	close(slow.output)
	<-slow.Done()
	s.events.closeAndFlush()
	want := []string{"b-exec", "b", "a"}
	if !slices.Equal(rec.exits, want) {
		t.Fatalf("published exits %v, want %v", rec.exits, want)
	}
}
