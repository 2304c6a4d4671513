//go:build linux

package pod

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/containerd/errdefs"

	"github.com/custom-shim/containerd-shim-custom-v1/bundle"
)

// PluginID names the shim's Set among pkg/shim's internal plugins (package sandbox registers
// it): the Sandbox service adds the pods it creates, the Task service patches their member
// containers' specs and releases a pod its Shutdown names.
const PluginID = "pods"

// Set is the pods of a shim, by sandbox id.
type Set struct {
	mu   sync.Mutex
	pods map[string]*Pod // guarded by mu
	// shut holds the ids of the pods Shutdown released, so that a second Shutdown of one is
	// answered as the first was (containerd's controller follows a ShutdownSandbox with its
	// own). Guarded by mu; one entry per pod the shim ever had (a shim has a few).
	shut map[string]bool
	// removed, if set, is called (without mu) after Remove: the shim may now be idle. had says
	// whether a pod really left the set (false for an id it did not hold).
	removed func(had bool)
}

// NewSet returns an empty set.
func NewSet() *Set { return &Set{pods: map[string]*Pod{}, shut: map[string]bool{}} }

// OnRemove sets the function called after Remove (the server's check whether the shim serves
// anything any more), with whether a pod really left the set. Call it once, before the shim
// serves; a no-op on a nil Set.
func (s *Set) OnRemove(fn func(had bool)) {
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
	had := s.pods[id] != nil
	delete(s.pods, id)
	fn := s.removed
	s.mu.Unlock()
	if fn != nil {
		fn(had)
	}
}

// Shutdown releases pod id (Release: nothing of it is left) and takes it out of the set. It is
// idempotent: a pod the set shut down before is no error. An id the set never had is NotFound
// (and still calls the OnRemove function: a shim whose CreateSandbox failed must not outlive
// its caller's cleanup).
func (s *Set) Shutdown(ctx context.Context, id string) error {
	s.mu.Lock()
	p, done := s.pods[id], s.shut[id]
	s.mu.Unlock()
	if p == nil {
		s.Remove(id)
		if done {
			return nil
		}
		return fmt.Errorf("sandbox %s: %w", id, errdefs.ErrNotFound)
	}
	if err := p.Release(ctx); err != nil {
		return err
	}
	s.mu.Lock()
	s.shut[id] = true
	s.mu.Unlock()
	s.Remove(id)
	return nil
}

// ReleaseAll releases every pod of the set, for a shim on its way out: whatever ends it, no
// holder, mount, cgroup or pin of a pod outlives it. Errors are joined.
func (s *Set) ReleaseAll(ctx context.Context) error {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	var pods []*Pod
	for _, p := range s.pods {
		if p != nil {
			pods = append(pods, p)
		}
	}
	s.mu.Unlock()
	var errs []error
	for _, p := range pods {
		errs = append(errs, p.Release(ctx))
	}
	return errors.Join(errs...)
}

// Has reports whether id is a pod of the set (being created included).
func (s *Set) Has(id string) bool {
	if s == nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.pods[id]
	return ok
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

// PatchMember gives the container of spec its pod's shared files if it is a member of one of
// the set's pods (its sandbox-id annotation names one: Pod.PatchMember); a no-op for a shim that
// has no pod (the pause path) and on a nil Set.
func (s *Set) PatchMember(spec *bundle.Spec) error {
	id := spec.Annotation(bundle.SandboxIDAnnotation)
	if s == nil || id == "" {
		return nil
	}
	s.mu.Lock()
	p := s.pods[id]
	s.mu.Unlock()
	if p == nil {
		return nil
	}
	return p.PatchMember(spec)
}
