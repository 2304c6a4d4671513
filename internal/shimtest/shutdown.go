//go:build linux

package shimtest

import (
	"context"
	"sync"

	"github.com/containerd/containerd/v2/pkg/shutdown"
)

// Shutdown is a shutdown.Service that counts Shutdown calls and keeps the callbacks registered
// (RunCallbacks runs them, as pkg/shim does once the server shuts down).
type Shutdown struct {
	shutdown.Service
	mu        sync.Mutex
	calls     int
	callbacks []func(context.Context) error
}

// Shutdown counts a call.
func (s *Shutdown) Shutdown() {
	s.mu.Lock()
	s.calls++
	s.mu.Unlock()
}

// Calls is the number of Shutdown calls.
func (s *Shutdown) Calls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

// RegisterCallback keeps fn.
func (s *Shutdown) RegisterCallback(fn func(context.Context) error) {
	s.mu.Lock()
	s.callbacks = append(s.callbacks, fn)
	s.mu.Unlock()
}

// RunCallbacks runs the callbacks in order and returns the first error.
func (s *Shutdown) RunCallbacks(ctx context.Context) error {
	s.mu.Lock()
	fns := append([]func(context.Context) error(nil), s.callbacks...)
	s.mu.Unlock()
	for _, fn := range fns {
		if err := fn(ctx); err != nil {
			return err
		}
	}
	return nil
}
