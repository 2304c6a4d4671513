//go:build linux

package manager

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/shim"
	runc "github.com/containerd/go-runc"
	"github.com/containerd/log"
	"golang.org/x/sys/unix"

	"github.com/custom-shim/containerd-shim-custom-v1/pod"
	"github.com/custom-shim/containerd-shim-custom-v1/process"
	"github.com/custom-shim/containerd-shim-custom-v1/rootfs"
)

// deadShimExitStatus is the exit status reported for a container whose shim died: 128+SIGKILL,
// as for containerd's runc shim.
const deadShimExitStatus = 128 + int(unix.SIGKILL)

// forceDeleteTimeout bounds `runc delete --force`, so that Stop still answers inside containerd's
// 5 s cleanup timeout (core/runtime/v2/shim.go) when the runtime hangs.
const forceDeleteTimeout = 3 * time.Second

// Stop is the delete action, which containerd runs after a shim server died: it force-deletes the
// container with the OCI runtime recorded in the bundle's options.json (defaults if missing),
// unmounts the bundle's rootfs (with the mounts and loop devices of its mount transforms),
// removes the server's socket if nothing listens on it any more, and reports the init pid from
// init.pid (0 if missing) with exit status 137. Cleanup failures are logged as warnings (stderr)
// and do not fail Stop, which must answer even for a server that never started.
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
	if isSandboxBundle(bundle) {
		// A pause-less pod's bundle: the pod's /dev/shm mount and files, which would keep
		// containerd from removing the bundle. Its holder ended with the shim.
		pod.CleanupBundle(ctx, bundle)
	}
	exitedAt := time.Now()
	// The rootfs, and what containerd's mount manager activated for it in the shim
	// (rootfs.StateDir): its loop devices end with its mounts.
	if err := rootfs.Unmount(ctx, id, bundle, 0); err != nil {
		logger.WithError(err).Warn("failed to unmount the container rootfs")
	}
	removeDeadSocket(ctx, bundle)
	return shim.StopStatus{
		Pid:        readInitPid(ctx, bundle),
		ExitStatus: deadShimExitStatus,
		ExitedAt:   exitedAt,
	}, nil
}

// isSandboxBundle reports whether bundle is a sandbox's (containerd's sandbox controller writes no
// config.json there; every container bundle has one).
func isSandboxBundle(bundle string) bool {
	_, err := os.Stat(filepath.Join(bundle, "config.json"))
	return errors.Is(err, os.ErrNotExist)
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

// bootstrapFile is the file containerd 2.x writes in every bundle with the shim's address (a
// JSON BootstrapResult); containerd 1.x reads the address file start writes instead.
const bootstrapFile = "bootstrap.json"

// removeDeadSocket removes the socket of the server that served the container of bundle, when
// nothing listens on it any more: the server died (SIGKILL) without its exit-time cleanup. The
// socket of a group's server is shared by all the group's containers, and a new server may
// already be listening on it, so it is only removed when a connect is refused (a live server,
// even a busy one, never refuses), and only if it is a socket.
func removeDeadSocket(ctx context.Context, bundle string) {
	addr, err := serverAddress(bundle)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			log.G(ctx).WithError(err).Warn("failed to read the shim address")
		}
		return
	}
	path, ok := strings.CutPrefix(addr, "unix://")
	if !ok || path == "" || path[0] != '/' {
		return // abstract or not a unix socket: nothing on disk
	}
	if fi, err := os.Lstat(path); err != nil || fi.Mode().Type() != os.ModeSocket {
		return
	}
	if !socketDead(addr) {
		return
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		log.G(ctx).WithError(err).WithField("address", addr).Warn("failed to remove the dead shim socket")
	}
}

// serverAddress returns the server address recorded in bundle: the address file start writes,
// else the one containerd 2.x wrote in bootstrap.json (containers it joined to a sandbox's
// server without running start).
func serverAddress(bundle string) (string, error) {
	raw, err := os.ReadFile(filepath.Join(bundle, addressFile))
	if err == nil {
		return strings.TrimSpace(string(raw)), nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	raw, err = os.ReadFile(filepath.Join(bundle, bootstrapFile))
	if err != nil {
		return "", err
	}
	var b struct {
		Address string `json:"address"`
	}
	if err := json.Unmarshal(raw, &b); err != nil {
		return "", fmt.Errorf("decode %s: %w", bootstrapFile, err)
	}
	return b.Address, nil
}
