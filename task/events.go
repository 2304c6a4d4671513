//go:build linux

package task

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/containerd/containerd/v2/core/events"
	"github.com/containerd/containerd/v2/core/runtime"
	"github.com/containerd/log"
)

// flushTimeout bounds how long shutdown waits for queued events to reach containerd. pkg/shim
// gives the shutdown callbacks 5 s before it exits anyway; this stays under that. A shim that
// decides to exit on its own (its last container deleted) waits for its events before the
// shutdown starts, much longer (lifetime.Drains): containerd 2.x, reloading after a crash,
// deletes a task whose process exited while it was down and shuts its shim down before its own
// ttrpc server is up, so the exit (and the delete) reach it only if the shim outlives that
// Shutdown until containerd serves again.
const flushTimeout = 4 * time.Second

// Retry delays while containerd is unreachable: the first retry is quick (retryFirst), then
// the delay doubles up to retryMax (retryMaxClosing once the shim is shutting down, with little
// time left).
const (
	retryFirst      = 20 * time.Millisecond
	retryMax        = time.Second
	retryMaxClosing = 100 * time.Millisecond
)

// queuedEvent is an event and the time it happened (the envelope's timestamp, whenever it is
// delivered).
type queuedEvent struct {
	topic string
	event events.Event
	at    time.Time
}

// eventSink delivers one event. An error wrapped by retryable means containerd could not be
// reached and the same event is to be tried again; any other error means it can never be
// delivered.
type eventSink interface {
	deliver(ctx context.Context, e queuedEvent) error
}

// retryableError marks a delivery that failed for want of containerd.
type retryableError struct{ error }

func (e retryableError) Unwrap() error { return e.error }

func retryable(err error) error { return retryableError{err} }

func isRetryable(err error) bool {
	var r retryableError
	return errors.As(err, &r)
}

// eventQueue is the ordered, unbounded queue of events to publish. send never blocks, so no
// caller ever holds up another on a slow containerd. Nothing is dropped while containerd is
// away: the forwarder retries the oldest event until it is delivered, and the ones behind it
// wait, so containerd sees them in order once it is back.
type eventQueue struct {
	mu     sync.Mutex
	items  []queuedEvent
	closed bool
	ready  chan struct{} // cap 1
	stop   chan struct{} // closed when the flush at shutdown gives up
	done   chan struct{} // closed when the forwarder has drained a closed queue
	flush  time.Duration // flushTimeout; shorter in tests
	// undelivered counts the events sent and not yet delivered (or dropped as undeliverable).
	undelivered tracker
	// idle, if set (before forward starts), is called each time the forwarder has delivered
	// everything queued: the shim's trim counts that as its last work (tune/trim.go).
	idle func()
}

func newEventQueue() *eventQueue {
	return &eventQueue{ready: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}), flush: flushTimeout}
}

func (q *eventQueue) send(evt events.Event) {
	topic := runtime.GetTopic(evt)
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		log.L.WithField("topic", topic).Warn("event after shutdown dropped")
		return
	}
	q.items = append(q.items, queuedEvent{topic: topic, event: evt, at: time.Now()})
	q.undelivered.add()
	q.mu.Unlock()
	q.wake()
}

func (q *eventQueue) wake() {
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

func (q *eventQueue) isClosed() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.closed
}

// forward delivers queued events in order until the queue is closed and drained, or the flush
// at shutdown gives up.
func (q *eventQueue) forward(ctx context.Context, sink eventSink) {
	defer close(q.done)
	for {
		q.mu.Lock()
		items, closed := q.items, q.closed
		q.items = nil
		q.mu.Unlock()
		for i := range items {
			if !q.deliver(ctx, sink, items[i]) {
				log.G(ctx).WithField("undelivered", len(items)-i).Error("shim exiting with events containerd never received")
				return
			}
			q.undelivered.done()
		}
		if len(items) > 0 {
			continue
		}
		if closed {
			return
		}
		if q.idle != nil {
			q.idle()
		}
		<-q.ready
	}
}

// deliver sends e, retrying while containerd is unreachable. It returns false only when the
// flush at shutdown has given up.
func (q *eventQueue) deliver(ctx context.Context, sink eventSink, e queuedEvent) bool {
	delay := retryFirst
	for attempt := 1; ; attempt++ {
		err := sink.deliver(ctx, e)
		switch {
		case err == nil:
			if attempt > 1 {
				log.G(ctx).WithField("topic", e.topic).WithField("attempts", attempt).Info("event delivered after containerd came back")
			}
			return true
		case !isRetryable(err):
			log.G(ctx).WithError(err).WithField("topic", e.topic).Error("event refused by containerd, dropped")
			return true
		case attempt == 1:
			log.G(ctx).WithError(err).WithField("topic", e.topic).Warn("containerd unreachable, holding events until it is back")
		}
		limit := retryMax
		if q.isClosed() {
			limit = retryMaxClosing
		}
		delay = min(delay, limit)
		select {
		case <-q.stop:
			return false
		case <-time.After(delay):
		}
		delay *= 2
	}
}

// delivered returns true once every event sent so far was delivered (or dropped as
// undeliverable), false if ctx ends first.
func (q *eventQueue) delivered(ctx context.Context) bool { return q.undelivered.wait(ctx) }

// closeAndFlush stops accepting events and waits (bounded) for the queued ones to be delivered.
func (q *eventQueue) closeAndFlush() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.wake()
	select {
	case <-q.done:
		return
	case <-time.After(50 * time.Millisecond):
		log.L.WithField("timeout", q.flush).Info("shutdown: waiting for containerd to take the events it has not received yet")
	}
	select {
	case <-q.done:
	case <-time.After(q.flush):
		close(q.stop) // the forwarder gives up at its next retry; the shim exits meanwhile
	}
}
