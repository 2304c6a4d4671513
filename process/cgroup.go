//go:build linux

package process

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

// cgroup is the part of a container's cgroup the shim reads: its metrics, in containerd's
// metrics types (io.containerd.cgroups.v1.Metrics or io.containerd.cgroups.v2.Metrics), and the
// directory an OOM watcher watches (oom.Watcher.AddDir).
type cgroup interface {
	stat() (any, error)
	oomDir() (string, error)
}

type cgroupV1 struct {
	cg     cgroup1.Cgroup
	memory string // the memory controller's directory; "" if no memory controller holds it
}

func (c cgroupV1) stat() (any, error) {
	m, err := c.cg.Stat(cgroup1.IgnoreNotExist)
	if err != nil {
		return nil, notFoundIfGone(err)
	}
	return m, nil
}

func (c cgroupV1) oomDir() (string, error) {
	if c.memory == "" {
		return "", fmt.Errorf("no cgroup v1 memory controller holds it: %w", errdefs.ErrNotImplemented)
	}
	return c.memory, nil
}

type cgroupV2 struct {
	m   *cgroup2.Manager
	dir string
}

func (c cgroupV2) stat() (any, error) {
	m, err := c.m.Stat()
	if err != nil {
		return nil, notFoundIfGone(err)
	}
	return m, nil
}

func (c cgroupV2) oomDir() (string, error) { return c.dir, nil }

func notFoundIfGone(err error) error {
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, cgroup1.ErrCgroupDeleted) {
		return fmt.Errorf("cgroup removed: %w", errdefs.ErrNotFound)
	}
	return err
}

// unifiedMountpoint is where cgroup2.Load finds a group (its default mountpoint).
const unifiedMountpoint = "/sys/fs/cgroup"

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
		return cgroupV2{m: m, dir: filepath.Join(unifiedMountpoint, path)}, nil
	}
	l, err := v1Mounts()
	if err != nil {
		return nil, err
	}
	path, err := l.pidPath(pid)
	if err != nil {
		return nil, err
	}
	cg, err := cgroup1.Load(path, cgroup1.WithHierarchy(l.hierarchy))
	if err != nil {
		return nil, err
	}
	c := cgroupV1{cg: cg}
	if rel, err := path(cgroup1.Memory); err == nil && l.memory != nil {
		c.memory = l.memory.Path(rel)
	}
	return c, nil
}

// v1Layout is what the shim reads once about the cgroup v1 hierarchies of its mount namespace.
// cgroup1.PidPath reads /proc/self/mountinfo once per controller, and cgroup1.Load's default
// hierarchy once more, for every container: about 14 parses per Load, and as many again for the
// OOM watch, which was a quarter of all the shim allocated under load (a heap profile of a
// 300-lifecycle, 3,000-exec soak) for mounts that do not change while the shim lives.
type v1Layout struct {
	subsystems []cgroup1.Subsystem // cgroup1.Default(): the mounted controllers
	memory     interface{ Path(string) string }
	roots      map[string]string // controller (or "name=..." hierarchy) -> root of its mount
}

// v1 holds the layout once it has been read; a failed read is tried again at the next Load.
var v1 struct {
	sync.Mutex
	layout *v1Layout
}

func v1Mounts() (*v1Layout, error) {
	v1.Lock()
	defer v1.Unlock()
	if v1.layout == nil {
		l, err := readV1Layout()
		if err != nil {
			return nil, err
		}
		v1.layout = l
	}
	return v1.layout, nil
}

func readV1Layout() (*v1Layout, error) {
	subsystems, err := cgroup1.Default()
	if err != nil {
		return nil, fmt.Errorf("cgroup v1 hierarchy: %w", err)
	}
	l := &v1Layout{subsystems: subsystems, roots: map[string]string{}}
	for _, s := range subsystems {
		if p, ok := s.(interface{ Path(string) string }); ok && s.Name() == cgroup1.Memory {
			l.memory = p
		}
	}
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	l.roots = cgroupV1Roots(string(b))
	return l, nil
}

// cgroupV1Roots maps each controller (and "name=..." hierarchy) of the cgroup v1 mounts in a
// mountinfo text to the root of its mount (the 4th field), the first mount of each winning. A
// line is "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTIONS".
func cgroupV1Roots(mountinfo string) map[string]string {
	roots := map[string]string{}
	for _, line := range strings.Split(mountinfo, "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		if !ok {
			continue
		}
		fields, tail := strings.Fields(pre), strings.Fields(post)
		if len(fields) < 5 || len(tail) < 3 || tail[0] != "cgroup" {
			continue
		}
		for _, opt := range strings.Split(tail[2], ",") {
			if _, seen := roots[opt]; !seen {
				roots[opt] = fields[3]
			}
		}
	}
	return roots
}

func (l *v1Layout) hierarchy() ([]cgroup1.Subsystem, error) { return l.subsystems, nil }

// pidPath is cgroup1.PidPath(pid) with the mount roots read once: pid's group in each
// controller, relative to the root of that controller's mount (which differs from "/" when the
// shim runs in a container or a cgroup namespace).
func (l *v1Layout) pidPath(pid int) (cgroup1.Path, error) {
	file := fmt.Sprintf("/proc/%d/cgroup", pid)
	paths, err := cgroup1.ParseCgroupFile(file)
	if err != nil {
		return nil, fmt.Errorf("parse cgroup file %s: %w", file, err)
	}
	for name, p := range paths {
		root, ok := l.roots[name]
		if !ok {
			return nil, fmt.Errorf("cgroup v1 controller %q of pid %d: %w", name, pid, cgroup1.ErrNoCgroupMountDestination)
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return nil, fmt.Errorf("cgroup v1 controller %q of pid %d: %w", name, pid, err)
		}
		paths[name] = filepath.Join("/", rel)
	}
	return func(name cgroup1.Name) (string, error) {
		if p, ok := paths[string(name)]; ok {
			return p, nil
		}
		if p, ok := paths["name="+string(name)]; ok {
			return p, nil
		}
		return "", cgroup1.ErrControllerNotActive
	}, nil
}
