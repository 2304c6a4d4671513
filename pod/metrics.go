//go:build linux

package pod

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

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
func (p *Pod) Metrics() (any, error) {
	if p.cfg.CgroupParent == "" {
		return nil, fmt.Errorf("sandbox %s: no cgroup parent: %w", p.id, errdefs.ErrNotFound)
	}
	path, err := cgroupPath(p.cfg.CgroupParent)
	if err != nil {
		return nil, fmt.Errorf("sandbox %s: %w", p.id, err)
	}
	var st any
	if cgroups.Mode() == cgroups.Unified {
		st, err = statV2(path)
	} else {
		st, err = statV1(path)
	}
	if err != nil {
		return nil, fmt.Errorf("sandbox %s: cgroup %s: %w", p.id, path, err)
	}
	return st, nil
}

// statV1 reads the v1 statistics of the cgroup at path in every hierarchy that has it.
func statV1(path string) (any, error) {
	cg, err := cgroup1.Load(cgroup1.StaticPath(path))
	if errors.Is(err, cgroup1.ErrCgroupDeleted) {
		return nil, fmt.Errorf("not on disk: %w", errdefs.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	return cg.Stat(cgroup1.IgnoreNotExist)
}

// statV2 reads the CPU and memory statistics of the cgroup v2 group at path.
func statV2(path string) (any, error) {
	if _, err := os.Stat(filepath.Join(unifiedMountpoint, path)); errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("not on disk: %w", errdefs.ErrNotFound)
	}
	m, err := cgroup2.Load(path)
	if err != nil {
		return nil, err
	}
	return m.StatFiltered(cgroup2.StatCPU | cgroup2.StatMemory)
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
