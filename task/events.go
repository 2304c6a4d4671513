//go:build linux

package task

import (
	"context"
	"sync"
	"time"

	"github.com/containerd/containerd/v2/core/runtime"
	"github.com/containerd/containerd/v2/pkg/shim"
	"github.com/containerd/log"
)

// flushTimeout bounds how long shutdown waits for queued events to reach containerd.
const flushTimeout = 2 * time.Second

// eventQueue is the ordered, unbounded queue of events to publish. send never blocks, so no
// caller ever holds up another on a slow containerd.
type eventQueue struct {
	mu     sync.Mutex
	items  []any
	closed bool
	ready  chan struct{} // cap 1
	done   chan struct{} // closed when the forwarder has drained a closed queue
}

func newEventQueue() *eventQueue {
	return &eventQueue{ready: make(chan struct{}, 1), done: make(chan struct{})}
}

func (q *eventQueue) send(evt any) {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		log.L.WithField("topic", runtime.GetTopic(evt)).Warn("event after shutdown dropped")
		return
	}
	q.items = append(q.items, evt)
	q.mu.Unlock()
	q.wake()
}

func (q *eventQueue) wake() {
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// forward publishes queued events in order until the queue is closed and drained.
func (q *eventQueue) forward(ctx context.Context, pub shim.Publisher) {
	defer close(q.done)
	for {
		q.mu.Lock()
		items, closed := q.items, q.closed
		q.items = nil
		q.mu.Unlock()
		for _, e := range items {
			topic := runtime.GetTopic(e)
			if err := pub.Publish(ctx, topic, e); err != nil {
				log.G(ctx).WithError(err).WithField("topic", topic).Error("publish event")
			}
		}
		if len(items) > 0 {
			continue
		}
		if closed {
			return
		}
		<-q.ready
	}
}

// closeAndFlush stops accepting events and waits (bounded) for the queued ones to be published.
func (q *eventQueue) closeAndFlush() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.wake()
	select {
	case <-q.done:
	case <-time.After(flushTimeout):
		log.L.Warn("timed out flushing events at shutdown")
	}
}
