//go:build linux

package harness

import (
	"strings"
	"testing"
	"time"
)

func TestParseEvent(t *testing.T) {
	tests := []struct {
		name string
		line string
		want Event
	}{{
		name: "ctr 1.6 exit, RFC 3339 exited_at",
		line: `2026-11-23 09:11:54.08624578 +0000 UTC t /tasks/exit {"container_id":"k1","id":"k1","pid":17609,"exit_status":143,"exited_at":"2026-11-23T09:11:54.086189063Z"}`,
		want: Event{Namespace: "t", Topic: "/tasks/exit", ContainerID: "k1", ID: "k1", ExitStatus: 143},
	}, {
		name: "ctr 2.4 exit, object exited_at, zero status omitted",
		line: `2026-11-23 09:13:46.312985843 +0000 UTC cst-1 /tasks/exit {"container_id":"a1","id":"a1","pid":20107,"exited_at":{"seconds":1795425226,"nanos":309730044}}`,
		want: Event{Namespace: "cst-1", Topic: "/tasks/exit", ContainerID: "a1", ID: "a1"},
	}, {
		name: "container event carries the container in id",
		line: `2026-11-23 09:13:46.423495182 +0000 UTC t /containers/delete {"id":"a1"}`,
		want: Event{Namespace: "t", Topic: "/containers/delete", ContainerID: "a1", ID: "a1"},
	}, {
		name: "a slash inside the JSON does not move the topic",
		line: `2026-11-23 09:13:47.312332197 +0000 UTC t /tasks/create {"container_id":"a3","bundle":"/tmp/x /y"}`,
		want: Event{Namespace: "t", Topic: "/tasks/create", ContainerID: "a3"},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := parseEvent(tc.line)
			if !ok {
				t.Fatalf("not parsed: %s", tc.line)
			}
			got.JSON = ""
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
	for _, line := range []string{"", `time="2026-11-23T09:13:45Z" level=warning msg="DEPRECATION: ..."`} {
		if _, ok := parseEvent(line); ok {
			t.Errorf("parsed a line that is no event: %q", line)
		}
	}
}

func TestEventsWait(t *testing.T) {
	e := newEvents()
	lines := "2026-11-23 09:00:00 +0000 UTC ns /tasks/start {\"container_id\":\"c\"}\n" +
		"2026-11-23 09:00:01 +0000 UTC ns /tasks/exit {\"container_id\":\"c\",\"id\":\"c\",\"exit_status\":3}\n"
	go e.consume(strings.NewReader(lines))
	ev, ok := e.Wait(0, 5*time.Second, TaskEvent("ns", "c", "/tasks/exit"))
	if !ok || ev.ExitStatus != 3 || ev.Seq != 1 {
		t.Fatalf("Wait: %+v, %v", ev, ok)
	}
	if _, ok := e.Wait(2, time.Second, TaskEvent("ns", "c", "")); ok {
		t.Fatal("Wait from past the end found an event")
	}
	if got := e.Since(0, TaskEvent("ns", "c", "/tasks/start")); len(got) != 1 {
		t.Fatalf("Since: %+v", got)
	}
}

func TestUnescapeMountinfo(t *testing.T) {
	for in, want := range map[string]string{
		`/tmp/a`:           "/tmp/a",
		`/tmp/with\040sp`:  "/tmp/with sp",
		`/tmp/back\134sl`:  `/tmp/back\sl`,
		`/tmp/end\040`:     "/tmp/end ",
		`/tmp/trailing\04`: `/tmp/trailing\04`,
	} {
		if got := unescapeMountinfo(in); got != want {
			t.Errorf("unescapeMountinfo(%q) = %q, want %q", in, got, want)
		}
	}
}
