//go:build linux

package task

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	eventstypes "github.com/containerd/containerd/api/events"
	eventsapi "github.com/containerd/containerd/api/services/ttrpc/events/v1"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/ttrpc"
	"github.com/containerd/typeurl/v2"
	"google.golang.org/protobuf/types/known/emptypb"
)

// flakySink fails the first `down` deliveries as if containerd were away, then records.
type flakySink struct {
	recorder
	mu       sync.Mutex
	down     int
	attempts int
	refuse   string // topic containerd refuses for good
}

func (f *flakySink) deliver(ctx context.Context, e queuedEvent) error {
	f.mu.Lock()
	f.attempts++
	if f.down > 0 {
		f.down--
		f.mu.Unlock()
		return retryable(errors.New("connection refused"))
	}
	f.mu.Unlock()
	if e.topic == f.refuse {
		return errors.New("invalid envelope")
	}
	return f.recorder.deliver(ctx, e)
}

// While containerd is away nothing is dropped or reordered: the oldest event is retried and the
// ones behind it wait. An event containerd refuses outright is dropped, not retried for ever.
func TestEventQueueHoldsEventsWhileContainerdIsAway(t *testing.T) {
	q := newEventQueue()
	sink := &flakySink{down: 5, refuse: "/tasks/paused"}
	go q.forward(context.Background(), sink)
	q.send(&eventstypes.TaskExit{ID: "a", ExitStatus: 137})
	q.send(&eventstypes.TaskPaused{ContainerID: "c"})
	q.send(&eventstypes.TaskExit{ID: "b"})
	q.send(&eventstypes.TaskDelete{ID: "c"})
	q.closeAndFlush()
	want := []string{"/tasks/exit", "/tasks/exit", "/tasks/delete"}
	if len(sink.topics) != len(want) || sink.exits[0] != "a" || sink.exits[1] != "b" {
		t.Fatalf("delivered %v (exits %v), want %v with exits [a b]", sink.topics, sink.exits, want)
	}
	for i := range want {
		if sink.topics[i] != want[i] {
			t.Fatalf("delivered %v, want %v", sink.topics, want)
		}
	}
	if sink.attempts != 5+4 {
		t.Fatalf("%d delivery attempts, want 9 (5 failed retries of the first event, then one each)", sink.attempts)
	}
}

// At shutdown the flush waits for containerd only so long; then the shim may exit.
func TestEventQueueFlushIsBounded(t *testing.T) {
	q := newEventQueue()
	q.flush = 300 * time.Millisecond
	go q.forward(context.Background(), &flakySink{down: 1 << 30})
	q.send(&eventstypes.TaskExit{ID: "a"})
	start := time.Now()
	q.closeAndFlush()
	if d := time.Since(start); d > time.Second {
		t.Fatalf("closeAndFlush took %s with containerd away, want about %s", d, q.flush)
	}
	select {
	case <-q.done:
	case <-time.After(2 * time.Second):
		t.Fatal("forwarder still retrying after the flush gave up")
	}
}

// fakeEvents is containerd's ttrpc events service, recording what it is forwarded.
type fakeEvents struct {
	mu  sync.Mutex
	got []*eventsapi.ForwardRequest
}

func (f *fakeEvents) Forward(_ context.Context, r *eventsapi.ForwardRequest) (*emptypb.Empty, error) {
	f.mu.Lock()
	f.got = append(f.got, r)
	f.mu.Unlock()
	return &emptypb.Empty{}, nil
}

func (f *fakeEvents) received() []*eventsapi.ForwardRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*eventsapi.ForwardRequest(nil), f.got...)
}

// serveEvents listens on path with svc until the returned stop is called.
func serveEvents(t *testing.T, path string, svc *fakeEvents) (stop func()) {
	t.Helper()
	srv, err := ttrpc.NewServer()
	if err != nil {
		t.Fatal(err)
	}
	eventsapi.RegisterTTRPCEventsService(srv, svc)
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(context.Background(), l)
	return func() { _ = srv.Close() }
}

func waitReceived(t *testing.T, svc *fakeEvents, n int) []*eventsapi.ForwardRequest {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := svc.received()
		if len(got) >= n || time.Now().After(deadline) {
			return got
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Events published while containerd is down (no listener) arrive, in order and with the time
// they happened, once it listens; after containerd restarts (a new listener on the same path)
// the publisher re-dials.
func TestRemotePublisherSurvivesContainerdRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "containerd.sock.ttrpc")
	ctx := namespaces.WithNamespace(context.Background(), "ns1")
	pub := newRemotePublisher("unix://" + path)
	defer pub.Close()
	q := newEventQueue()
	go q.forward(ctx, pub)

	happened := time.Now()
	q.send(&eventstypes.TaskExit{ContainerID: "c1", ID: "c1", Pid: 42, ExitStatus: 137})
	q.send(&eventstypes.TaskDelete{ContainerID: "c1", ID: "c1", Pid: 42, ExitStatus: 137})
	time.Sleep(200 * time.Millisecond) // containerd is away: several attempts fail

	first := &fakeEvents{}
	stop := serveEvents(t, path, first)
	got := waitReceived(t, first, 2)
	if len(got) != 2 || got[0].Envelope.Topic != "/tasks/exit" || got[1].Envelope.Topic != "/tasks/delete" {
		t.Fatalf("after containerd came up it received %v, want /tasks/exit then /tasks/delete", got)
	}
	env := got[0].Envelope
	if env.Namespace != "ns1" {
		t.Fatalf("envelope namespace %q, want ns1", env.Namespace)
	}
	if ts := env.Timestamp.AsTime(); ts.Before(happened.Add(-time.Second)) || ts.After(happened.Add(150*time.Millisecond)) {
		t.Fatalf("envelope timestamp %s: want the time of the exit (%s), not of the delivery", ts, happened)
	}
	v, err := typeurl.UnmarshalAny(env.Event)
	if err != nil {
		t.Fatal(err)
	}
	if x, ok := v.(*eventstypes.TaskExit); !ok || x.ExitStatus != 137 || x.Pid != 42 {
		t.Fatalf("event %#v, want the TaskExit 137 of pid 42", v)
	}

	// containerd restarts, once the publisher has had its replies: the fake records an event
	// before it answers, and an answer lost in the close would have the publisher send that
	// event again to the next containerd (at least once, as with a containerd that dies between
	// its handling and its answer). The pause lets the old connection's end reach the client
	// first: a fake server closed mid-request may still run it, which a dead containerd would not.
	delivered, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if !q.undelivered.wait(delivered) {
		t.Fatal("the publisher has no answer from containerd for the events it received")
	}
	stop()
	_ = os.Remove(path)
	time.Sleep(100 * time.Millisecond)
	q.send(&eventstypes.TaskExit{ContainerID: "c2", ID: "c2", Pid: 43})
	time.Sleep(100 * time.Millisecond)
	second := &fakeEvents{}
	defer serveEvents(t, path, second)()
	if got := waitReceived(t, second, 1); len(got) != 1 || got[0].Envelope.Topic != "/tasks/exit" {
		t.Fatalf("after a restart containerd received %v, want the /tasks/exit of c2", got)
	}
	if n := len(first.received()); n != 2 {
		t.Fatalf("the first containerd received %d events, want 2", n)
	}
	q.closeAndFlush()
}

// The forwarder reports each time it has delivered everything queued (the trim's cue): first
// with nothing queued, then once all 50 events sent have reached the sink.
func TestEventQueueReportsIdleOnceDrained(t *testing.T) {
	q := newEventQueue()
	sink := &recorder{}
	idle := make(chan int, 16)
	q.idle = func() {
		sink.mu.Lock()
		idle <- len(sink.topics)
		sink.mu.Unlock()
	}
	go q.forward(context.Background(), sink)
	select {
	case n := <-idle:
		if n != 0 {
			t.Fatalf("first report after %d events, want 0 (nothing queued yet)", n)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no idle report with nothing queued")
	}
	for i := range 50 {
		q.send(&eventstypes.TaskExit{ID: fmt.Sprint(i)})
	}
	for delivered := 0; delivered < 50; {
		select {
		case delivered = <-idle:
		case <-time.After(5 * time.Second):
			t.Fatalf("no idle report after %d of 50 events", delivered)
		}
	}
	q.closeAndFlush()
}

// delivered waits until every event sent so far reached containerd, or was refused for good:
// while containerd is away it does not return true, and it does the moment the held events go
// through.
func TestEventQueueDelivered(t *testing.T) {
	q := newEventQueue()
	if !q.delivered(context.Background()) {
		t.Fatal("an empty queue is not delivered")
	}
	sink := &flakySink{down: 3, refuse: "/tasks/paused"}
	q.send(&eventstypes.TaskExit{ID: "a", ExitStatus: 137})
	q.send(&eventstypes.TaskPaused{ContainerID: "c"})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if q.delivered(ctx) {
		t.Fatal("delivered before the forwarder ran")
	}
	go q.forward(context.Background(), sink)
	wait, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if !q.delivered(wait) {
		t.Fatal("events not delivered once containerd came back")
	}
	sink.mu.Lock()
	defer sink.mu.Unlock()
	if len(sink.topics) != 1 || sink.attempts != 3+2 {
		t.Fatalf("delivered %v in %d attempts, want the exit (the refused event dropped) in 5", sink.topics, sink.attempts)
	}
}
