//go:build linux

package pod

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/containerd/cgroups/v3"
	"github.com/containerd/cgroups/v3/cgroup1"
	"github.com/containerd/cgroups/v3/cgroup2"
	"github.com/containerd/errdefs"
)

// unifiedMountpoint is where cgroup2 is mounted on a cgroup v2 host (cgroups.Mode() Unified).
const unifiedMountpoint = "/sys/fs/cgroup"

// Metrics returns the statistics of the pod's cgroup, Config.CgroupParent (the cgroup the
// kubelet makes for each pod), as podsandbox's Controller.Metrics does: a *cgroup1 stats.Metrics
// on a cgroup v1 (or hybrid) host, a *cgroup2 stats.Metrics (CPU and memory) on a v2 host. A
// systemd slice name (the kubelet's systemd cgroup driver) is expanded to its path. A pod
// without a cgroup parent, or whose cgroup is not on disk, is NotFound.
//
// The cgroup is loaded at the first call and kept (a cgroup v1 Load parses the mount table once
// per controller): containerd 2.4's CRI plugin asks every second, for every pod. A cgroup
// found gone is loaded again at the next call.
func (p *Pod) Metrics() (any, error) {
	if p.cfg.CgroupParent == "" {
		return nil, fmt.Errorf("sandbox %s: no cgroup parent: %w", p.id, errdefs.ErrNotFound)
	}
	path, err := cgroupPath(p.cfg.CgroupParent)
	if err != nil {
		return nil, fmt.Errorf("sandbox %s: %w", p.id, err)
	}
	p.stats.Lock()
	defer p.stats.Unlock()
	if p.stats.stat == nil {
		if cgroups.Mode() == cgroups.Unified {
			p.stats.stat, err = loadV2(path)
		} else {
			p.stats.stat, err = loadV1(path)
		}
	}
	var st any
	if err == nil {
		st, err = p.stats.stat()
	}
	if errors.Is(err, errdefs.ErrNotFound) {
		p.stats.stat = nil
	}
	if err != nil {
		return nil, fmt.Errorf("sandbox %s: cgroup %s: %w", p.id, path, err)
	}
	return st, nil
}

// podStats is a pod's loaded cgroup, as the function that reads its statistics.
type podStats struct {
	sync.Mutex
	stat func() (any, error)
}

// loadV1 loads the cgroup at path in every v1 hierarchy that has it.
func loadV1(path string) (func() (any, error), error) {
	cg, err := cgroup1.Load(cgroup1.StaticPath(path))
	if err != nil {
		return nil, v1Gone(err)
	}
	return func() (any, error) {
		// Stat with IgnoreNotExist reads a removed cgroup as zeros: State looks first (and
		// marks the handle deleted, so that Stat answers ErrCgroupDeleted).
		_ = cg.State()
		st, err := cg.Stat(cgroup1.IgnoreNotExist)
		return st, v1Gone(err)
	}, nil
}

// v1Gone makes a cgroup v1 error that says the cgroup is gone NotFound.
func v1Gone(err error) error {
	if errors.Is(err, cgroup1.ErrCgroupDeleted) || errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("not on disk: %w", errdefs.ErrNotFound)
	}
	return err
}

// loadV2 loads the cgroup v2 group at path, for its CPU and memory statistics.
func loadV2(path string) (func() (any, error), error) {
	dir := filepath.Join(unifiedMountpoint, path)
	gone := func() error {
		if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("not on disk: %w", errdefs.ErrNotFound)
		}
		return nil
	}
	if err := gone(); err != nil {
		return nil, err
	}
	m, err := cgroup2.Load(path)
	if err != nil {
		return nil, err
	}
	return func() (any, error) {
		if err := gone(); err != nil {
			return nil, err
		}
		return m.StatFiltered(cgroup2.StatCPU | cgroup2.StatMemory)
	}, nil
}

// cgroupPath returns the cgroup path of a cgroup parent: a path as it is, a systemd slice name
// (no '/', ending in ".slice") expanded as systemd nests slices: "a-b-c.slice" is
// /a.slice/a-b.slice/a-b-c.slice and "-.slice" the root. A malformed slice name is
// InvalidArgument.
func cgroupPath(parent string) (string, error) {
	if strings.Contains(parent, "/") || !strings.HasSuffix(parent, ".slice") {
		return parent, nil
	}
	name := strings.TrimSuffix(parent, ".slice")
	if name == "-" {
		return "/", nil
	}
	if name == "" || strings.HasPrefix(name, "-") || strings.HasSuffix(name, "-") || strings.Contains(name, "--") {
		return "", fmt.Errorf("invalid systemd slice name %q: %w", parent, errdefs.ErrInvalidArgument)
	}
	var path, prefix strings.Builder
	for i, part := range strings.Split(name, "-") {
		if i > 0 {
			prefix.WriteByte('-')
		}
		prefix.WriteString(part)
		path.WriteString("/" + prefix.String() + ".slice")
	}
	return path.String(), nil
}
