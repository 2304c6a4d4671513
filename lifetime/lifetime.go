//go:build linux

package lifetime

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/containerd/containerd/v2/pkg/shutdown"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/containerd/log"
	"github.com/containerd/ttrpc"
)

// ClosingVersion is what a server that is shutting down answers as Version to a Connect without
// a container id: the start action of a new container of the group asks (manager/probe_linux.go),
// and waits for that server (ShimPid) to be gone before it starts another at the group's socket.
const ClosingVersion = "closing"

// ErrClosing answers a request for new work in a server that is shutting down.
var ErrClosing = fmt.Errorf("shim is shutting down: %w", errdefs.ErrUnavailable)

// Server is the shim server's life (package doc). Its methods are safe for concurrent use.
type Server struct {
	sd shutdown.Service

	requests inflight // the requests being served (the interceptor)

	mu       sync.Mutex
	closing  bool                              // guarded by mu
	reserved int                               // work being set up (Reserve); guarded by mu
	busy     []func() bool                     // the services' busy reports; guarded by mu
	stops    []func(ctx context.Context) error // the services' stop steps; guarded by mu
	drains   []func(ctx context.Context) bool  // the services' waits before an idle exit; guarded by mu
	socket   retiredSocket                     // guarded by mu
}

// New returns the server's life and registers its shutdown with sd.
func New(sd shutdown.Service) *Server {
	s := &Server{sd: sd}
	sd.RegisterCallback(s.stop)
	return s
}

// Serves registers a service's report of whether it still has something to serve: the server
// exits only when every report is false. busy may take the service's own locks.
func (s *Server) Serves(busy func() bool) {
	s.mu.Lock()
	s.busy = append(s.busy, busy)
	s.mu.Unlock()
}

// OnStop registers a step of the shutdown, run once the requests in flight were answered, after
// the steps registered before it.
func (s *Server) OnStop(step func(ctx context.Context) error) {
	s.mu.Lock()
	s.stops = append(s.stops, step)
	s.mu.Unlock()
}

// Drains registers a wait of a service's, run when the server decides to exit because it serves
// nothing (ShutdownIfIdle), before the shutdown begins: wait returns true once the service has
// finished what it owes its clients (the Task service: every event delivered), false if ctx ends
// first. The server keeps serving meanwhile (closing, off the group's path) for up to lingerMax.
// An exit for another reason (SIGTERM) does not wait: pkg/shim bounds its shutdown to seconds.
func (s *Server) Drains(wait func(ctx context.Context) bool) {
	s.mu.Lock()
	s.drains = append(s.drains, wait)
	s.mu.Unlock()
}

// Reserve claims the server for new work (a container or a pod being created): until release
// is called the server does not decide to exit. A closing server takes no new work: ErrClosing
// (Unavailable). Call release once the work is registered with its service (or abandoned).
func (s *Server) Reserve() (release func(), err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return nil, ErrClosing
	}
	s.reserved++
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			s.reserved--
			s.mu.Unlock()
		})
	}, nil
}

// Closing reports whether the server has decided to exit.
func (s *Server) Closing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

// ShutdownIfIdle makes the server exit if it serves nothing (no work reserved, every busy report
// false): it is closing from then on, its socket leaves the group's path, and pkg/shim's
// shutdown runs (stop). The caller holds none of its services' locks.
func (s *Server) ShutdownIfIdle() {
	s.mu.Lock()
	if s.closing || s.reserved > 0 {
		s.mu.Unlock()
		return
	}
	for _, busy := range s.busy {
		if busy() {
			s.mu.Unlock()
			return
		}
	}
	// Closing and the socket's move are one step for the start action's probe (Connect reads
	// Closing): a server it finds closing has left the group's path already.
	s.closing = true
	s.socket.retire()
	drains := append([]func(context.Context) bool(nil), s.drains...)
	s.mu.Unlock()
	// Nothing owed (the common case: containerd takes events as they come): shut down now.
	done, cancel := context.WithCancel(context.Background())
	cancel()
	if drained(done, drains) {
		s.sd.Shutdown()
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), lingerMax)
		defer cancel()
		if !drained(ctx, drains) {
			log.G(ctx).WithField("timeout", lingerMax).Warn("shutdown: containerd did not take what the shim owed it in time, exiting anyway")
		}
		s.sd.Shutdown()
	}()
}

// lingerMax bounds how long a server that decided to exit keeps serving for its services'
// drains: the time containerd may take to come back after a crash (it reloads, deletes the
// tasks whose processes died meanwhile and shuts their shims down before it serves events
// again). The reference shim retries an event for about 15 s, then drops it.
const lingerMax = 30 * time.Second

// drained runs the waits in order and reports whether all returned true before ctx ended.
func drained(ctx context.Context, waits []func(context.Context) bool) bool {
	for _, wait := range waits {
		if !wait(ctx) {
			return false
		}
	}
	return true
}

// stop is the server's shutdown (pkg/shim's callback), however it came (ShutdownIfIdle,
// SIGTERM): closing and off the group's path first, the requests in flight answered, the
// services' stop steps in order, the retired socket removed last.
func (s *Server) stop(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	s.socket.retire()
	stops := append([]func(context.Context) error(nil), s.stops...)
	s.mu.Unlock()
	// Answer what is in flight first: a Delete still to be answered queues its event yet.
	if !s.requests.wait(ctx, answerGrace, answerWaitMax) {
		log.G(ctx).WithField("timeout", answerWaitMax).Warn("shutdown: requests still in flight, exiting anyway")
	}
	var errs []error
	for _, step := range stops {
		errs = append(errs, step(ctx))
	}
	s.mu.Lock()
	s.socket.removeRetired()
	s.mu.Unlock()
	return errors.Join(errs...)
}

// UnaryServerInterceptor converts every error to its gRPC code, once, here, and counts the
// requests in flight (the server answers them before it exits). pkg/shim chains it for every
// service of the server.
func (s *Server) UnaryServerInterceptor() ttrpc.UnaryServerInterceptor {
	return func(ctx context.Context, u ttrpc.Unmarshaler, _ *ttrpc.UnaryServerInfo, m ttrpc.Method) (any, error) {
		s.requests.begin()
		defer s.requests.end()
		resp, err := m(ctx, u)
		if err != nil {
			return nil, errgrpc.ToGRPC(err)
		}
		return resp, nil
	}
}
