//go:build linux

package process

import (
	"errors"
	"fmt"
	"os"

	"github.com/containerd/cgroups/v3"
	"github.com/containerd/cgroups/v3/cgroup1"
	"github.com/containerd/cgroups/v3/cgroup2"
	"github.com/containerd/errdefs"
)

// cgroup is the part of a container's cgroup the shim reads: its metrics, in containerd's
// metrics types (io.containerd.cgroups.v1.Metrics or io.containerd.cgroups.v2.Metrics).
type cgroup interface {
	stat() (any, error)
}

type cgroupV1 struct{ cg cgroup1.Cgroup }

func (c cgroupV1) stat() (any, error) {
	m, err := c.cg.Stat(cgroup1.IgnoreNotExist)
	if err != nil {
		return nil, notFoundIfGone(err)
	}
	return m, nil
}

type cgroupV2 struct{ m *cgroup2.Manager }

func (c cgroupV2) stat() (any, error) {
	m, err := c.m.Stat()
	if err != nil {
		return nil, notFoundIfGone(err)
	}
	return m, nil
}

func notFoundIfGone(err error) error {
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, cgroup1.ErrCgroupDeleted) {
		return fmt.Errorf("cgroup removed: %w", errdefs.ErrNotFound)
	}
	return err
}

// loadCgroup finds the cgroup of a live process. It is loaded right after create, so that
// metrics stay readable after the init has exited and until the container is deleted.
func loadCgroup(pid int) (cgroup, error) {
	if cgroups.Mode() == cgroups.Unified {
		path, err := cgroup2.PidGroupPath(pid)
		if err != nil {
			return nil, err
		}
		m, err := cgroup2.Load(path)
		if err != nil {
			return nil, err
		}
		return cgroupV2{m}, nil
	}
	cg, err := cgroup1.Load(cgroup1.PidPath(pid))
	if err != nil {
		return nil, err
	}
	return cgroupV1{cg}, nil
}
