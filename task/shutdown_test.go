//go:build linux

package task

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/errdefs"

	"github.com/custom-shim/containerd-shim-custom-v1/internal/shimtest"
	"github.com/custom-shim/containerd-shim-custom-v1/lifetime"
)

// newTestService is a service with containers, its life on a counting shutdown.Service.
func newTestService(containers map[string]*container) (*service, *shimtest.Shutdown) {
	sd := &shimtest.Shutdown{}
	s := &service{life: lifetime.New(sd), containers: containers}
	s.life.Serves(s.busy)
	return s, sd
}

// Shutdown stops the shim only when it serves no container; a container kept only for the retry
// of an unanswered Delete does not count, a Create in flight (a reserved, nil entry) does.
func TestShutdownWaitsForContainersButNotUnansweredDeletes(t *testing.T) {
	for _, tc := range []struct {
		name       string
		containers map[string]*container
		stops      bool
	}{
		{"none", map[string]*container{}, true},
		{"a live container", map[string]*container{"a": {id: "a"}}, false},
		{"a create in flight", map[string]*container{"a": nil}, false},
		{"only an unanswered delete", map[string]*container{"a": {id: "a", unanswered: true}}, true},
		{"an unanswered delete and a live container", map[string]*container{"a": {id: "a", unanswered: true}, "b": {id: "b"}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, sd := newTestService(tc.containers)
			if _, err := s.Shutdown(context.Background(), nil); err != nil {
				t.Fatal(err)
			}
			if got := sd.Calls() == 1; got != tc.stops {
				t.Fatalf("shut down %v, want %v", got, tc.stops)
			}
		})
	}
}

// answerRetry takes an unanswered container out once, and nothing else.
func TestAnswerRetry(t *testing.T) {
	kept := &container{id: "a", unanswered: true}
	live := &container{id: "b"}
	s := &service{containers: map[string]*container{"a": kept, "b": live}}
	if s.answerRetry(live) {
		t.Fatal("a live container was answered as a retry")
	}
	if !s.answerRetry(kept) {
		t.Fatal("the unanswered container was not answered")
	}
	if s.answerRetry(kept) {
		t.Fatal("the unanswered container was answered twice")
	}
	if _, ok := s.containers["a"]; ok || s.containers["b"] != live {
		t.Fatalf("containers after the retry: %v", s.containers)
	}
}

// The shutdown waits for the exit publications in flight; it gives up when its context ends.
func TestTrackerWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var tr tracker
		if !tr.wait(t.Context()) {
			t.Fatal("wait with nothing running did not return at once")
		}
		release := make(chan struct{})
		for range 3 {
			tr.Go(func() { <-release })
		}
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		if tr.wait(ctx) {
			t.Fatal("wait returned while goroutines ran")
		}
		close(release)
		if !tr.wait(t.Context()) {
			t.Fatal("wait gave up")
		}
		tr.Go(func() {}) // counted again from zero
		if !tr.wait(t.Context()) {
			t.Fatal("wait gave up on the second round")
		}
	})
}

// A shim that decided to exit says so to the start action's probe (Connect without an id), and
// takes no new container.
func TestClosingShimTakesNoNewContainer(t *testing.T) {
	s, sd := newTestService(map[string]*container{})
	if r, err := s.Connect(context.Background(), &taskAPI.ConnectRequest{}); err != nil || r.Version != "" || r.ShimPid == 0 {
		t.Fatalf("probe of a serving shim: %+v, %v", r, err)
	}
	if _, err := s.Shutdown(context.Background(), nil); err != nil || sd.Calls() != 1 {
		t.Fatalf("shutdown: %v (%d calls)", err, sd.Calls())
	}
	if r, err := s.Connect(context.Background(), &taskAPI.ConnectRequest{}); err != nil || r.Version != lifetime.ClosingVersion {
		t.Fatalf("probe of a closing shim: %+v, %v", r, err)
	}
	if _, err := s.reserve("c1"); !errdefs.IsUnavailable(err) {
		t.Fatalf("a new container in a closing shim: %v, want Unavailable", err)
	}
}
