//go:build linux

package task

import (
	"context"
	"fmt"
	"sync"

	"github.com/containerd/containerd/v2/pkg/sys/reaper"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/custom-shim/containerd-shim-custom-v1/bundle"
	"github.com/custom-shim/containerd-shim-custom-v1/lifetime"
	"github.com/custom-shim/containerd-shim-custom-v1/process"
	"github.com/custom-shim/containerd-shim-custom-v1/tune"
)

var empty = &emptypb.Empty{}

// container is a process.Container with the ordering of its exits.
type container struct {
	*process.Container
	id   string
	gate execGate
	// sharedPID: no PID namespace of its own, so its processes outlive its init.
	sharedPID bool
	// deleting serializes the Deletes of the container's init, from the OCI runtime's delete to
	// the bookkeeping, so that a retry sees what the Delete it retries decided.
	deleting sync.Mutex
	// unanswered: deleted, but the caller's deadline had passed before the Delete could answer
	// (see Delete). Guarded by service.mu.
	unanswered bool
}

// members is what the Task service needs of the shim's pause-less pods (pod.Set, the Sandbox
// service's): the pod's files for a member's spec at Create, and a pod's release when
// containerd's Shutdown names it.
type members interface {
	PatchMember(spec *bundle.Spec) error
	Shutdown(ctx context.Context, id string) error
}

// service implements the Task API for every container of this shim.
type service struct {
	ctx    context.Context // the shim's context: carries the namespace; events use it
	life   *lifetime.Server
	events *eventQueue
	router *exitRouter
	exits  *exitQueue
	oom    *oomEvents // OOM hook: task/oom.go
	trim   *tune.Trimmer
	pods   members // nil in a shim built without the Sandbox service

	mu         sync.Mutex
	containers map[string]*container // nil value: id reserved by a Create in flight. Guarded by mu.
	// publishing counts the exit publications (handleExit's goroutines), which the shutdown
	// waits for before it flushes the events.
	publishing tracker
}

// newService starts the exit pump, the dispatcher and the event forwarder; they stop when the
// shim shuts down (its stop step, registered with life).
func newService(ctx context.Context, pub *remotePublisher, life *lifetime.Server, pods members) *service {
	s := &service{
		ctx:        ctx,
		life:       life,
		events:     newEventQueue(),
		router:     newExitRouter(),
		exits:      newExitQueue(),
		containers: map[string]*container{},
		pods:       pods,
	}
	life.Serves(s.busy)
	s.oom = newOOMEvents(ctx, s.events) // OOM hook: one watcher for all containers
	// Goroutines that hold an OS thread for good: os/signal's loop (pkg/shim's signal handling;
	// it waits in the runtime's signal queue as in a system call) and the OOM watcher's epoll_wait.
	blocked := 1
	if s.oom.w != nil {
		blocked++
	}
	s.trim = tune.NewTrimmer(blocked)
	// Delivering events is work too (exits publish them, and the forwarder can trail the last
	// request by seconds under load): the trim waits for the queue to be drained as well.
	s.events.idle = s.trim.After
	ec := reaper.Default.Subscribe()
	go s.pump(ec)
	go s.dispatch()
	go s.events.forward(ctx, pub)
	// Before the shim exits on its own (its last container deleted): the exits being published
	// and every event delivered, so that a containerd that is away (restarting) still gets them.
	life.Drains(func(ctx context.Context) bool {
		return s.publishing.wait(ctx) && s.events.delivered(ctx)
	})
	// Run by life once the requests in flight were answered.
	life.OnStop(func(ctx context.Context) error {
		// An exit being published (waiting, bounded, for its output to be read) queues its
		// event yet: the flush below is to deliver it.
		if !s.publishing.wait(ctx) {
			log.G(ctx).Warn("shutdown: exits still being published, exiting anyway")
		}
		reaper.Default.Unsubscribe(ec)
		s.trim.Stop()
		s.oom.close() // OOM hook
		s.events.closeAndFlush()
		return pub.Close()
	})
	return s
}

// validID checks an id that ends up in file names: containerd's identifier rules.
func validID(kind, id string) error { return process.ValidID(kind, id) }

func (s *service) get(id string) (*container, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.containers[id]
	if c == nil {
		return nil, fmt.Errorf("container %s: %w", id, errdefs.ErrNotFound)
	}
	return c, nil
}

func (s *service) getProcess(id, execID string) (*container, process.Process, error) {
	c, err := s.get(id)
	if err != nil {
		return nil, nil, err
	}
	p, err := c.Process(execID)
	if err != nil {
		return nil, nil, err
	}
	return c, p, nil
}

// reserve claims a container id for a Create in flight: the server for new work (a shim that
// is shutting down takes no new container: Unavailable), then the id. release(c) puts c in the
// id's place (nil: gives the id back) and lets the server go.
func (s *service) reserve(id string) (release func(*container), err error) {
	done, err := s.life.Reserve()
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", id, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.containers[id]; ok {
		done()
		return nil, fmt.Errorf("container %s: %w", id, errdefs.ErrAlreadyExists)
	}
	s.containers[id] = nil
	return func(c *container) {
		s.mu.Lock()
		if c == nil {
			delete(s.containers, id)
		} else {
			s.containers[id] = c
		}
		s.mu.Unlock()
		done()
	}, nil
}

// busy reports whether the service still serves a container (one reserved by a Create in flight
// included); one kept only for the retry of an unanswered Delete does not count (Shutdown).
func (s *service) busy() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.containers {
		if c == nil || !c.unanswered {
			return true
		}
	}
	return false
}

func apiStatus(st process.State) taskStatus {
	switch st {
	case process.Created:
		return statusCreated
	case process.Running:
		return statusRunning
	case process.Pausing:
		return statusPausing
	case process.Paused:
		return statusPaused
	case process.Stopped, process.Deleted:
		return statusStopped
	}
	return statusUnknown
}

// maxSignal is the highest signal number Linux has (SIGRTMAX); 0 only checks the process exists.
const maxSignal = 64

// processName names a process in errors: the container for its init, else the exec in it.
func processName(id, execID string) string {
	if execID == "" {
		return "container " + id
	}
	return "exec " + execID + " in container " + id
}

// logger returns a logger with the ids of a request.
func logger(ctx context.Context, id, execID string) *log.Entry {
	l := log.G(ctx).WithField("container_id", id)
	if execID != "" {
		l = l.WithField("exec_id", execID)
	}
	return l
}
