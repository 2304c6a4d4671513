package oom

import (
	"errors"
	"fmt"

	"github.com/containerd/errdefs"
)

// ErrUnsupported is returned by New until OOM watching is implemented.
var ErrUnsupported = fmt.Errorf("OOM watching is not implemented yet: %w", errdefs.ErrNotImplemented)

// Watcher reports OOM kills of watched containers.
type Watcher interface {
	// Add starts watching the cgroup of container id; onOOM is called for each OOM kill.
	Add(id string, cgroupPath string, onOOM func(id string)) error
	// Remove stops watching container id and releases what Add took.
	Remove(id string)
	// Close stops every watch.
	Close() error
}

// New returns the watcher for this host's cgroup version.
func New() (Watcher, error) {
	return nil, errors.Join(ErrUnsupported)
}
