//go:build linux

package pod

import (
	"fmt"
	"sync"

	"github.com/containerd/containerd/v2/plugins"
	"github.com/containerd/errdefs"
	"github.com/containerd/plugin"
	"github.com/containerd/plugin/registry"
)

// PluginID names the shim's Set among pkg/shim's internal plugins: the Sandbox service adds the
// pods it creates, the Task service patches their member containers' specs and keeps the shim up
// while a pod lives.
const PluginID = "pods"

func init() {
	registry.Register(&plugin.Registration{
		Type: plugins.InternalPlugin,
		ID:   PluginID,
		InitFn: func(*plugin.InitContext) (any, error) {
			return NewSet(), nil
		},
	})
}

// Set is the pods of a shim, by sandbox id.
type Set struct {
	mu   sync.Mutex
	pods map[string]*Pod // guarded by mu
	// removed, if set, is called (without mu) after a pod left the set: the shim may now be idle.
	removed func()
}

// NewSet returns an empty set.
func NewSet() *Set { return &Set{pods: map[string]*Pod{}} }

// OnRemove sets the function called after a pod leaves the set (the Task service's check
// whether the shim serves anything any more). Call it once, before the shim serves; a no-op on
// a nil Set.
func (s *Set) OnRemove(fn func()) {
	if s == nil {
		return
	}
	s.mu.Lock()
	s.removed = fn
	s.mu.Unlock()
}

// Add adds p; a pod with its id already there is AlreadyExists.
func (s *Set) Add(p *Pod) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := p.Status().ID
	if _, ok := s.pods[id]; ok {
		return fmt.Errorf("sandbox %s: %w", id, errdefs.ErrAlreadyExists)
	}
	s.pods[id] = p
	return nil
}

// Reserve claims id for a pod being created; release(p) puts p in its place (nil: gives the
// id back). A second claim of an id held or reserved is AlreadyExists.
func (s *Set) Reserve(id string) (release func(*Pod), err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.pods[id]; ok {
		return nil, fmt.Errorf("sandbox %s: %w", id, errdefs.ErrAlreadyExists)
	}
	s.pods[id] = nil
	return func(p *Pod) {
		s.mu.Lock()
		defer s.mu.Unlock()
		if p == nil {
			delete(s.pods, id)
		} else {
			s.pods[id] = p
		}
	}, nil
}

// Get returns pod id; NotFound if there is none (or it is still being created).
func (s *Set) Get(id string) (*Pod, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.pods[id]
	if p == nil {
		return nil, fmt.Errorf("sandbox %s: %w", id, errdefs.ErrNotFound)
	}
	return p, nil
}

// Remove takes pod id out of the set (if there) and calls the OnRemove function: also for an id
// the set never had, so that a shim whose CreateSandbox failed does not outlive containerd's
// ShutdownSandbox of it.
func (s *Set) Remove(id string) {
	s.mu.Lock()
	delete(s.pods, id)
	fn := s.removed
	s.mu.Unlock()
	if fn != nil {
		fn()
	}
}

// Len is the number of pods, those being created included: while it is not 0 the shim serves.
// A nil Set has none.
func (s *Set) Len() int {
	if s == nil {
		return 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.pods)
}

// PatchMember gives the container of bundle its pod's shared files if it is a member of one of
// the set's pods (Pod.PatchMember); a no-op for a shim that has no pod (the pause path) and on
// a nil Set.
func (s *Set) PatchMember(bundle, sandboxID string) error {
	if s == nil || sandboxID == "" {
		return nil
	}
	s.mu.Lock()
	p := s.pods[sandboxID]
	s.mu.Unlock()
	if p == nil {
		return nil
	}
	return p.PatchMember(bundle)
}
