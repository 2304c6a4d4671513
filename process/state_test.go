//go:build linux

package process

import (
	"errors"
	"testing"
	"time"

	"github.com/containerd/errdefs"
)

func TestTransitions(t *testing.T) {
	all := []State{Created, Running, Pausing, Paused, Stopped, Deleted}
	for _, from := range all {
		for _, to := range all {
			p := newProc()
			p.state = from
			want := allowed(from, to)
			if got := p.cas(from, to); got != want {
				t.Errorf("cas(%s→%s) = %v, want %v", from, to, got, want)
			}
			if want && p.State() != to {
				t.Errorf("after cas(%s→%s) state is %s", from, to, p.State())
			}
			if !want && p.State() != from {
				t.Errorf("refused cas(%s→%s) changed state to %s", from, to, p.State())
			}
		}
	}
}

func TestExitWins(t *testing.T) {
	for _, from := range []State{Created, Running, Pausing, Paused} {
		p := newProc()
		p.state = from
		if !p.SetExited(3, time.Now()) {
			t.Fatalf("SetExited from %s refused", from)
		}
		if p.State() != Stopped {
			t.Fatalf("state after exit from %s: %s", from, p.State())
		}
		if p.cas(Stopped, Running) {
			t.Fatalf("a stopped process was resurrected")
		}
		if p.SetExited(4, time.Now()) {
			t.Fatalf("second exit recorded")
		}
		if st, _ := p.Exit(); st != 3 {
			t.Fatalf("status %d, want 3", st)
		}
		select {
		case <-p.Done():
		default:
			t.Fatalf("done not closed")
		}
	}
}

func TestMarkDeleted(t *testing.T) {
	p := newProc()
	p.state = Running
	if err := p.markDeleted(); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("delete running: %v", err)
	}
	p.SetExited(0, time.Now())
	if err := p.markDeleted(); err != nil {
		t.Fatalf("delete stopped: %v", err)
	}
	if err := p.markDeleted(); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("delete deleted: %v", err)
	}
	q := newProc()
	if err := q.markDeleted(); err != nil {
		t.Fatalf("delete created: %v", err)
	}
	select {
	case <-q.Done():
	default:
		t.Fatalf("done not closed for deleted unstarted process")
	}
}
