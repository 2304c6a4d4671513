//go:build linux

package manager

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/shim"
	runc "github.com/containerd/go-runc"
	"github.com/containerd/log"
	"golang.org/x/sys/unix"

	"github.com/custom-shim/containerd-shim-custom-v1/process"
)

// deadShimExitStatus is the exit status reported for a container whose shim died: 128+SIGKILL,
// as for containerd's runc shim.
const deadShimExitStatus = 128 + int(unix.SIGKILL)

// forceDeleteTimeout bounds `runc delete --force`, so that Stop still answers inside containerd's
// 5 s cleanup timeout (core/runtime/v2/shim.go) when the runtime hangs.
const forceDeleteTimeout = 3 * time.Second

// Stop is the delete action, which containerd runs after a shim server died: it force-deletes the
// container with the OCI runtime recorded in the bundle's options.json (defaults if missing),
// unmounts the bundle's rootfs, and reports the init pid from init.pid (0 if missing) with exit
// status 137. Cleanup failures are logged as warnings (stderr) and do not fail Stop, which must
// answer even for a server that never started.
func (m *manager) Stop(ctx context.Context, id string) (shim.StopStatus, error) {
	bundle, err := stopBundle(ctx)
	if err != nil {
		return shim.StopStatus{}, err
	}
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return shim.StopStatus{}, fmt.Errorf("delete container %s: %w", id, err)
	}
	logger := log.G(ctx).WithField("container_id", id)
	opts, err := process.ReadOptions(bundle)
	if err != nil {
		logger.WithError(err).Warn("using default runtime options")
		opts = &process.Options{}
	}
	forceDelete(ctx, process.NewRuntime(opts, bundle, ns), id)
	exitedAt := time.Now()
	if err := mount.UnmountRecursive(filepath.Join(bundle, "rootfs"), 0); err != nil {
		logger.WithError(err).Warn("failed to unmount the container rootfs")
	}
	return shim.StopStatus{
		Pid:        readInitPid(ctx, bundle),
		ExitStatus: deadShimExitStatus,
		ExitedAt:   exitedAt,
	}, nil
}

// stopBundle returns the bundle of the delete action: the -bundle flag, else the working directory.
func stopBundle(ctx context.Context) (string, error) {
	if o, ok := ctx.Value(shim.OptsKey{}).(shim.Opts); ok && o.BundlePath != "" {
		return o.BundlePath, nil
	}
	cwd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("get bundle directory: %w", err)
	}
	return cwd, nil
}

// forceDelete runs `runc delete --force id`, logging a failure: the container may never have
// been created, or may be gone already.
func forceDelete(ctx context.Context, r *runc.Runc, id string) {
	ctx, cancel := context.WithTimeout(ctx, forceDeleteTimeout)
	defer cancel()
	if err := r.Delete(ctx, id, &runc.DeleteOpts{Force: true}); err != nil {
		log.G(ctx).WithError(err).WithField("container_id", id).Warn("failed to force-delete the container")
	}
}

// readInitPid returns the pid recorded in bundle/init.pid, or 0 if there is none.
func readInitPid(ctx context.Context, bundle string) int {
	pid, err := runc.ReadPidFile(filepath.Join(bundle, process.InitPidFile))
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			log.G(ctx).WithError(err).Warn("failed to read the init pid file")
		}
		return 0
	}
	return pid
}
