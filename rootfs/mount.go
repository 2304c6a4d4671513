//go:build linux

package rootfs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	"golang.org/x/sys/unix"
)

// Dir is the directory of a bundle the rootfs is mounted on (containerd's name for it: the
// bundle's config.json says "rootfs").
const Dir = "rootfs"

// Mount mounts mounts on <bundle>/rootfs, the rootfs of container id: with mount.All when no
// mount carries a transform, else through containerd's mount manager (package doc). On error
// nothing of it is left mounted. No mounts (a rootfs the client prepared itself) is nothing to do.
func Mount(ctx context.Context, id, bundle string, mounts []mount.Mount) (retErr error) {
	if len(mounts) == 0 {
		return nil
	}
	target := filepath.Join(bundle, Dir)
	if err := os.Mkdir(target, 0o711); err != nil && !errors.Is(err, os.ErrExist) { //nolint:gosec // the reference shim's 0711: a container's user traverses it
		return fmt.Errorf("container %s: create rootfs dir: %w", id, err)
	}
	system := mounts
	if HasTransforms(mounts) {
		var err error
		if system, err = activate(ctx, id, bundle, mounts); err != nil {
			return mountError(id, err)
		}
		defer func() {
			if retErr != nil {
				logUnmount(ctx, id, deactivate(ctx, bundle, 0))
			}
		}()
	}
	if err := mount.All(system, target); err != nil {
		// mount.All stops at the first failure: take down the ones before it.
		logUnmount(ctx, id, mount.UnmountRecursive(target, unix.MNT_DETACH))
		return mountError(id, err)
	}
	return nil
}

// Unmount undoes Mount from what the bundle holds, so that it serves the delete action after a
// crash as well as Delete: the rootfs directory is unmounted (with flags, as
// mount.UnmountRecursive), then whatever the mount manager activated (its mounts unmounted: a
// loop device of one is released with it; its state removed). Each step is tried whatever the
// one before it did; calling it again, or on a bundle never mounted, is harmless.
func Unmount(ctx context.Context, id, bundle string, flags int) error {
	var errs []error
	if err := mount.UnmountRecursive(filepath.Join(bundle, Dir), flags); err != nil {
		errs = append(errs, err)
	}
	if err := deactivate(ctx, bundle, flags); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("container %s: unmount rootfs: %v: %w", id, err, errdefs.ErrUnknown) //nolint:errorlint // cause as text: one class in the chain
	}
	return nil
}

// managerTransforms are the transforms containerd's mount manager applies (the transforms map of
// core/mount/manager's Activate).
var managerTransforms = []string{"format", "mkdir", "mkfs"}

// HasTransforms reports whether any of mounts has a transform of containerd's mount manager as
// the outermost part of its type ("format/mkdir/overlay"): only then is the manager needed (it
// stops at a transform it does not know, and mount.All refuses such a type).
func HasTransforms(mounts []mount.Mount) bool {
	return slices.ContainsFunc(mounts, func(m mount.Mount) bool {
		t := transformsOf(m)
		return len(t) > 0 && slices.Contains(managerTransforms, t[0])
	})
}

// transformsOf returns the transforms of m's type, outermost first ("format/mkdir/overlay":
// format, mkdir).
func transformsOf(m mount.Mount) []string {
	parts := strings.Split(m.Type, "/")
	return parts[:len(parts)-1]
}

// mkfsRoots returns the directories of the images the mkfs transform of mounts makes (their
// sources, named by the caller: containerd's snapshotter puts them in its own directory). The
// mount manager only writes below roots it was given; the daemon's gives it containerd's root
// directory, which a shim does not know. The mounts of a Create come from containerd (root, and
// free to name any host path as a bind source), so the shim trusts their directories likewise.
func mkfsRoots(mounts []mount.Mount) []string {
	var roots []string
	for _, m := range mounts {
		if !slices.Contains(transformsOf(m), "mkfs") || !filepath.IsAbs(m.Source) {
			continue
		}
		if dir := filepath.Dir(filepath.Clean(m.Source)); !slices.Contains(roots, dir) {
			roots = append(roots, dir)
		}
	}
	return roots
}

func mountError(id string, err error) error {
	return fmt.Errorf("container %s: mount rootfs: %v: %w", id, err, errdefs.ErrInvalidArgument) //nolint:errorlint // cause as text: one class in the chain
}

func logUnmount(ctx context.Context, id string, err error) {
	if err != nil {
		log.G(ctx).WithError(err).WithField("container_id", id).Warn("cleanup of a failed rootfs mount")
	}
}
