//go:build linux

package pod

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/cgroups/v3"
	"github.com/containerd/cgroups/v3/cgroup1"
	"github.com/containerd/cgroups/v3/cgroup2"
	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// The holder goes where the CRI plugin puts a pause container (podsandbox's sandbox spec), so
// that a member container sees of it what it would see of a pause container: the pod's cgroup
// and a sandbox's OOM score.

// sandboxOOMScoreAdj is the oom_score_adj the CRI plugin gives a pause container: the last
// process of a node the OOM killer picks (its death would end the pod's PID namespace).
const sandboxOOMScoreAdj = -998

// cgroupsFile, in the sandbox's bundle, lists the holder's cgroup directories (one per line), so
// that the delete action can remove them after the shim died (CleanupBundle).
const cgroupsFile = "holder-cgroups"

// hybridMountpoint is where a hybrid host mounts the (controller-less) unified hierarchy beside
// the v1 ones (unifiedMountpoint: a v2 host's).
const hybridMountpoint = "/sys/fs/cgroup/unified"

// holderCgroupPath is the cgroup a pause container of pod id gets for the cgroup parent of its
// config, as the CRI plugin names it (getCgroupsPath) and runc resolves it: <parent>/<id>;
// with a systemd slice (a parent whose last element ends in ".slice"), the scope
// cri-containerd-<id>.scope in that slice, expanded to its path; with no parent, <id> below the cgroup of the shim (runc's, its child's) itself, which
// nested says.
func holderCgroupPath(parent, id string) (cgroup string, nested bool, err error) {
	switch {
	case parent == "":
		return id, true, nil
	case strings.HasSuffix(path.Base(parent), ".slice"):
		p, err := cgroupPath(path.Base(parent))
		if err != nil {
			return "", false, err
		}
		return filepath.Join(p, "cri-containerd-"+id+".scope"), false, nil
	}
	return filepath.Join("/", parent, id), false, nil
}

// placeHolder moves the holder pid into its cgroup (holderCgroupPath), created in every
// hierarchy the host has (the v1 controllers and named hierarchies, and the unified one beside
// them on a hybrid host; the v2 tree on a v2 host), and gives it the OOM score of a pause
// container. It writes the directories it made into <bundle>/holder-cgroups before moving the
// holder. On error what it made is removed.
func placeHolder(bundle, parent, id string, pid int) (dirs []string, err error) {
	cgroup, nested, err := holderCgroupPath(parent, id)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = removeCgroups(dirs)
			_ = os.Remove(filepath.Join(bundle, cgroupsFile))
		}
	}()
	switch cgroups.Mode() {
	case cgroups.Unified:
		dirs, err = placeV2(unifiedMountpoint, cgroup, nested, pid, nil)
	case cgroups.Hybrid:
		dirs, err = placeV1(cgroup, nested, pid)
		if err == nil {
			dirs, err = placeV2(hybridMountpoint, cgroup, nested, pid, dirs)
		}
	default:
		dirs, err = placeV1(cgroup, nested, pid)
	}
	if err == nil {
		err = writeFile(bundle, cgroupsFile, []byte(strings.Join(dirs, "\n")+"\n"))
	}
	if err != nil {
		return dirs, fmt.Errorf("holder cgroup %s: %w", cgroup, err)
	}
	if err := setOOMScoreAdj(pid, sandboxOOMScoreAdj); err != nil {
		return dirs, err
	}
	return dirs, nil
}

// placeV1 creates the cgroup path (nested: below the shim's own, in each hierarchy) in every v1
// hierarchy and moves pid into it.
func placeV1(path string, nested bool, pid int) ([]string, error) {
	where := cgroup1.StaticPath(path)
	if nested {
		where = cgroup1.NestedPath(path)
	}
	cg, err := cgroup1.New(where, &specs.LinuxResources{})
	var dirs []string
	if cg != nil {
		for _, s := range cg.Subsystems() {
			p, ok := s.(interface{ Path(string) string })
			if rel, perr := where(s.Name()); ok && perr == nil {
				dirs = append(dirs, p.Path(rel))
			}
		}
	}
	if err != nil {
		return dirs, err
	}
	return dirs, cg.AddProc(uint64(pid))
}

// placeV2 creates the cgroup path (nested: below the shim's own) in the v2 hierarchy at
// mountpoint and moves pid into it; it returns dirs with the new directory appended.
func placeV2(mountpoint, path string, nested bool, pid int, dirs []string) ([]string, error) {
	if nested {
		own, err := cgroup2.NestedGroupPath("")
		if err != nil {
			return dirs, err
		}
		path = filepath.Join(own, path)
	}
	m, err := cgroup2.NewManager(mountpoint, path, &cgroup2.Resources{})
	if err != nil {
		return dirs, err
	}
	dirs = append(dirs, filepath.Join(mountpoint, path))
	return dirs, m.AddProc(uint64(pid))
}

// cgroupRemoveTimeout bounds the retries of removeCgroups: a cgroup whose last process has just
// exited can stay busy for a moment.
const cgroupRemoveTimeout = 2 * time.Second

// removeCgroups removes the holder's cgroup directories (each is a leaf: nothing else goes
// there). A directory already gone is no error; only directories under /sys/fs/cgroup are
// touched.
func removeCgroups(dirs []string) error {
	var errs []error
	deadline := time.Now().Add(cgroupRemoveTimeout)
	for _, d := range dirs {
		if !strings.HasPrefix(filepath.Clean(d), unifiedMountpoint+"/") {
			errs = append(errs, fmt.Errorf("not a cgroup directory: %q", d))
			continue
		}
		for {
			err := unix.Rmdir(d)
			if err == nil || errors.Is(err, unix.ENOENT) {
				break
			}
			if !errors.Is(err, unix.EBUSY) || time.Now().After(deadline) {
				errs = append(errs, fmt.Errorf("remove cgroup %s: %w", d, err))
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return errors.Join(errs...)
}

// removeCgroupsFile removes the cgroups <bundle>/holder-cgroups lists, then the file; no file
// is no error.
func removeCgroupsFile(bundle string) error {
	b, err := os.ReadFile(filepath.Join(bundle, cgroupsFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := removeCgroups(strings.Fields(string(b))); err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(bundle, cgroupsFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// setOOMScoreAdj gives pid the OOM score adj want, or, where the shim may not lower a score as
// far (without CAP_SYS_RESOURCE the kernel refuses a value below the lowest one a privileged
// process set for its ancestors, with EACCES), the lowest it may: the kernel's bound is
// found by bisection between want and the score pid has.
func setOOMScoreAdj(pid, want int) error {
	path := fmt.Sprintf("/proc/%d/oom_score_adj", pid)
	set := func(v int) error { return os.WriteFile(path, []byte(strconv.Itoa(v)), 0) }
	err := set(want)
	if !errors.Is(err, fs.ErrPermission) {
		if err != nil {
			return fmt.Errorf("set oom_score_adj of holder %d: %w", pid, err)
		}
		return nil
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read oom_score_adj of holder %d: %w", pid, err)
	}
	hi, err := strconv.Atoi(strings.TrimSpace(string(raw))) // allowed: it is the current score
	if err != nil {
		return fmt.Errorf("oom_score_adj of holder %d: %w", pid, err)
	}
	lo := want // refused
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		if set(mid) == nil {
			hi = mid
		} else {
			lo = mid
		}
	}
	if err := set(hi); err != nil {
		return fmt.Errorf("set oom_score_adj of holder %d: %w", pid, err)
	}
	return nil
}
