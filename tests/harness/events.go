//go:build linux

package harness

import (
	"bufio"
	"encoding/json"
	"io"
	"regexp"
	"strings"
	"sync"
	"time"
)

// Event is one line of `ctr events`: "<timestamp> <namespace> <topic> <json>".
type Event struct {
	Seq         int // position in the stream, from 0
	Namespace   string
	Topic       string
	ContainerID string // container_id, or id for /containers/* events
	ID          string // id: the exec id of /tasks/exit (the container id for init)
	ExecID      string // exec_id of /tasks/exec-added and /tasks/exec-started
	ExitStatus  uint32 // exit_status (omitted, so 0, when zero)
	JSON        string
}

// The timestamp holds spaces ("2006-01-02 15:04:05.999999999 +0000 UTC"), so anchor on the topic,
// the first token starting with "/" that is followed by a JSON object.
var eventLine = regexp.MustCompile(`^(.+?) (\S+) (/\S+) (\{.*\})\s*$`)

func parseEvent(line string) (Event, bool) {
	m := eventLine.FindStringSubmatch(line)
	if m == nil {
		return Event{}, false
	}
	var body struct {
		ContainerID string `json:"container_id"`
		ID          string `json:"id"`
		ExecID      string `json:"exec_id"`
		ExitStatus  uint32 `json:"exit_status"`
	}
	// exited_at is an RFC 3339 string from ctr 1.6 and an object from ctr 2.x: not decoded.
	_ = json.Unmarshal([]byte(m[4]), &body)
	e := Event{Namespace: m[2], Topic: m[3], ContainerID: body.ContainerID, ID: body.ID, ExecID: body.ExecID, ExitStatus: body.ExitStatus, JSON: m[4]}
	if e.ContainerID == "" && strings.HasPrefix(e.Topic, "/containers/") {
		e.ContainerID = body.ID
	}
	return e, true
}

// Events collects the parsed output of one `ctr events` process.
type Events struct {
	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every append; guarded by mu
	list    []Event       // guarded by mu
	done    bool          // stream ended; guarded by mu
}

func newEvents() *Events { return &Events{changed: make(chan struct{})} }

// consume reads r until EOF; it is the only writer of e.
func (e *Events) consume(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		ev, ok := parseEvent(sc.Text())
		if !ok {
			continue
		}
		e.mu.Lock()
		ev.Seq = len(e.list)
		e.list = append(e.list, ev)
		close(e.changed)
		e.changed = make(chan struct{})
		e.mu.Unlock()
	}
	e.mu.Lock()
	e.done = true
	close(e.changed)
	e.changed = make(chan struct{})
	e.mu.Unlock()
}

// Len is the number of events seen so far: pass it as `from` to look only at later events.
func (e *Events) Len() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.list)
}

// Since returns the events from position from on that match.
func (e *Events) Since(from int, match func(Event) bool) []Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []Event
	for _, ev := range e.list[min(from, len(e.list)):] {
		if match == nil || match(ev) {
			out = append(out, ev)
		}
	}
	return out
}

// Wait returns the first event from position from on that matches, waiting up to timeout.
func (e *Events) Wait(from int, timeout time.Duration, match func(Event) bool) (Event, bool) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		e.mu.Lock()
		for _, ev := range e.list[min(from, len(e.list)):] {
			if match(ev) {
				e.mu.Unlock()
				return ev, true
			}
		}
		changed, done := e.changed, e.done
		e.mu.Unlock()
		if done {
			return Event{}, false
		}
		select {
		case <-changed:
		case <-deadline.C:
			return Event{}, false
		}
	}
}

// TaskEvent matches /tasks/* events of container id in namespace ns, and topic if not empty.
func TaskEvent(ns, id, topic string) func(Event) bool {
	return func(e Event) bool {
		return e.Namespace == ns && e.ContainerID == id && strings.HasPrefix(e.Topic, "/tasks/") &&
			(topic == "" || e.Topic == topic)
	}
}
