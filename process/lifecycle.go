//go:build linux

package process

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/containerd/errdefs"
	runc "github.com/containerd/go-runc"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Pause freezes the container. While the runtime call is in flight the state is Pausing.
func (i *Init) Pause(ctx context.Context) error {
	i.opMu.Lock()
	defer i.opMu.Unlock()
	if !i.cas(Running, Pausing) {
		return fmt.Errorf("container %s is %s: cannot pause: %w", i.id, i.State(), errdefs.ErrFailedPrecondition)
	}
	m := markLog(i.rt.Log)
	if err := i.rt.Pause(ctx, i.id); err != nil {
		i.cas(Pausing, Running)
		return m.wrap(err, fmt.Sprintf("container %s: OCI runtime pause failed", i.id))
	}
	i.cas(Pausing, Paused) // false if it exited meanwhile: it stays Stopped
	return nil
}

// Resume thaws a paused container.
func (i *Init) Resume(ctx context.Context) error {
	i.opMu.Lock()
	defer i.opMu.Unlock()
	if st := i.State(); st != Paused {
		return fmt.Errorf("container %s is %s: cannot resume: %w", i.id, st, errdefs.ErrFailedPrecondition)
	}
	m := markLog(i.rt.Log)
	if err := i.rt.Resume(ctx, i.id); err != nil {
		return m.wrap(err, fmt.Sprintf("container %s: OCI runtime resume failed", i.id))
	}
	i.cas(Paused, Running)
	return nil
}

// Update applies new resource limits (a JSON runtime-spec LinuxResources).
func (i *Init) Update(ctx context.Context, resources []byte) error {
	var res specs.LinuxResources
	if err := json.Unmarshal(resources, &res); err != nil {
		return fmt.Errorf("container %s: invalid resources: %v: %w", i.id, err, errdefs.ErrInvalidArgument) //nolint:errorlint // cause as text: one class in the chain
	}
	switch st := i.State(); st {
	case Running, Paused, Pausing, Created:
	default:
		return fmt.Errorf("container %s is %s: cannot update: %w", i.id, st, errdefs.ErrFailedPrecondition)
	}
	m := markLog(i.rt.Log)
	if err := i.rt.Update(ctx, i.id, &res); err != nil {
		return m.wrap(err, fmt.Sprintf("container %s: OCI runtime update failed", i.id))
	}
	return nil
}

// Stats returns the container's cgroup metrics. It works after the init has exited, until
// the container is deleted.
func (i *Init) Stats() (any, error) {
	if i.cg == nil || i.State() == Deleted {
		return nil, fmt.Errorf("container %s: cgroup not found: %w", i.id, errdefs.ErrNotFound)
	}
	st, err := i.cg.stat()
	if err != nil {
		return nil, fmt.Errorf("container %s: stats: %w", i.id, err)
	}
	return st, nil
}

// OOMDir is the directory of the container's cgroup that an OOM watcher watches
// (oom.Watcher.AddDir): the memory controller's on cgroup v1, the group on v2. It is known from
// create on (from Start for a container restored from a checkpoint).
func (i *Init) OOMDir() (string, error) {
	if i.cg == nil {
		return "", fmt.Errorf("container %s: cgroup not found: %w", i.id, errdefs.ErrNotFound)
	}
	dir, err := i.cg.oomDir()
	if err != nil {
		return "", fmt.Errorf("container %s: %w", i.id, err)
	}
	return dir, nil
}

// SharedPIDNamespace reports whether the container lacks a PID namespace of its own: then
// its processes outlive its init unless killed.
func (i *Init) SharedPIDNamespace() bool { return i.sharedPID }

// KillAll sends SIGKILL to every process left in the container.
func (i *Init) KillAll(ctx context.Context) error {
	m := markLog(i.rt.Log)
	err := i.rt.Kill(ctx, i.id, int(unix.SIGKILL), &runc.KillOpts{All: true})
	if err != nil {
		return fmt.Errorf("container %s: kill remaining processes: %w", i.id, m.killError(err))
	}
	return nil
}
