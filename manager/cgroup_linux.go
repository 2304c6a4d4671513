//go:build linux

package manager

import (
	"context"
	"errors"
	"fmt"
	"io/fs"

	"github.com/containerd/cgroups/v3"
	"github.com/containerd/cgroups/v3/cgroup1"
	"github.com/containerd/cgroups/v3/cgroup2"
	"github.com/containerd/containerd/v2/pkg/shim"
	"github.com/containerd/log"
)

// joinShimCgroup moves process pid into the cgroup named by the ShimCgroup runtime option
// (a path relative to the cgroup root); an empty path does nothing.
func joinShimCgroup(path string, pid int) error {
	if path == "" {
		return nil
	}
	if cgroups.Mode() == cgroups.Unified {
		cg, err := cgroup2.Load(path)
		if err != nil {
			return fmt.Errorf("load shim cgroup %s: %w", path, err)
		}
		if err := cg.AddProc(uint64(pid)); err != nil {
			return fmt.Errorf("move shim server %d into cgroup %s: %w", pid, path, err)
		}
		return nil
	}
	cg, err := cgroup1.Load(cgroup1.StaticPath(path))
	if err != nil {
		return fmt.Errorf("load shim cgroup %s: %w", path, err)
	}
	if err := cg.AddProc(uint64(pid)); err != nil {
		return fmt.Errorf("move shim server %d into cgroup %s: %w", pid, path, err)
	}
	return nil
}

// adjustOOMScore sets the server's oom_score_adj one above containerd's (the start process's
// parent), so the OOM killer picks the shim before the daemon. Lowering a score needs
// CAP_SYS_RESOURCE; without it the write fails with EACCES even for root, and the server keeps
// the score it inherited: a warning, not a failed start.
func adjustOOMScore(ctx context.Context, pid int) error {
	err := shim.AdjustOOMScore(pid)
	if errors.Is(err, fs.ErrPermission) {
		log.G(ctx).WithError(err).WithField("pid", pid).Warn("keeping the shim server's inherited OOM score")
		return nil
	}
	if err != nil {
		return fmt.Errorf("adjust OOM score of shim server %d: %w", pid, err)
	}
	return nil
}
