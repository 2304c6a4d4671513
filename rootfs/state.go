//go:build linux

package rootfs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/core/mount/manager"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"github.com/moby/sys/mountinfo"
	bolt "go.etcd.io/bbolt"
)

const (
	// StateDir is the bundle's directory of the mount manager's state, there only while a rootfs
	// with transforms is mounted: its database (dbFile) and the mount points of the mounts it
	// made (targetsDir/<activation>/<n>), as containerd keeps them in its state directory.
	StateDir = "rootfs-mounts"
	dbFile   = "mounts.db"
	// targetsDir is short: the overlay's lowerdir option names one mount point per layer, and
	// the kernel takes one page of options.
	targetsDir = "t"
	// stateNamespace is the containerd namespace of the activations in a bundle's database. The
	// database is the bundle's own, so the container's namespace would add nothing, and Unmount
	// needs none.
	stateNamespace = "rootfs"
	// dbTimeout bounds the wait for the database's file lock, held only while a shim mounts or
	// unmounts this bundle's rootfs (a dead shim's lock is gone with it): the delete action must
	// answer within containerd's cleanup timeout.
	dbTimeout = time.Second
)

// state is the mount manager of one bundle, open on its database.
type state struct {
	mount.Manager
	db *bolt.DB
}

// openState opens the mount manager of bundle, creating its state if there is none. roots are
// directories, besides its own mount points, that its transforms may write in (mkfsRoots).
func openState(bundle string, roots []string) (*state, error) {
	dir := filepath.Join(bundle, StateDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	db, err := bolt.Open(filepath.Join(dir, dbFile), 0o600, &bolt.Options{Timeout: dbTimeout, NoStatistics: true})
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", dbFile, err)
	}
	opts := make([]manager.Opt, 0, len(roots))
	for _, r := range roots {
		opts = append(opts, manager.WithAllowedRoot(r))
	}
	m, err := manager.NewManager(db, filepath.Join(dir, targetsDir), opts...)
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	return &state{Manager: m, db: db}, nil
}

// close closes the manager: the roots it opened and the database.
func (s *state) close() error {
	if c, ok := s.Manager.(io.Closer); ok {
		return c.Close()
	}
	return s.db.Close()
}

// activate activates mounts as the activation named id in bundle's mount manager and returns the
// mounts left to mount on the rootfs directory. On error nothing of it is left.
func activate(ctx context.Context, id, bundle string, mounts []mount.Mount) ([]mount.Mount, error) {
	s, err := openState(bundle, mkfsRoots(mounts))
	if err != nil {
		_ = removeState(bundle)
		return nil, fmt.Errorf("open mount manager: %w", err)
	}
	// Activate writes the transformed mounts back into its argument.
	ai, err := s.Activate(namespaces.WithNamespace(ctx, stateNamespace), id, slices.Clone(mounts))
	if cerr := s.close(); cerr != nil && err == nil {
		return nil, errors.Join(fmt.Errorf("close mount manager: %w", cerr), deactivate(ctx, bundle, 0))
	}
	if err != nil {
		// Activate has unmounted what it mounted and forgotten the activation. Its
		// NotImplemented ("nothing for the manager to do") cannot happen: HasTransforms said
		// there is; a transform's NotImplemented (a directory outside its roots) is an error.
		_ = removeState(bundle)
		return nil, err
	}
	return ai.System, nil
}

// deactivate deactivates every activation of bundle's mount manager, unmounts whatever is still
// mounted below its state (a shim killed between a mount and its record) and removes the state.
// A bundle without state is nothing to do.
func deactivate(ctx context.Context, bundle string, flags int) error {
	dir := filepath.Join(bundle, StateDir)
	if _, err := os.Lstat(dir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	var errs []error
	if s, err := openState(bundle, nil); err != nil {
		errs = append(errs, fmt.Errorf("open mount manager: %w", err))
	} else {
		ctx := namespaces.WithNamespace(ctx, stateNamespace)
		infos, err := s.List(ctx)
		if err != nil {
			errs = append(errs, fmt.Errorf("list activations: %w", err))
		}
		// Each Deactivate unmounts its mounts in the reverse of their order.
		for _, ai := range infos {
			if err := s.Deactivate(ctx, ai.Name); err != nil && !errdefs.IsNotFound(err) {
				errs = append(errs, fmt.Errorf("deactivate %s: %w", ai.Name, err))
			}
		}
		if err := s.close(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := mount.UnmountRecursive(filepath.Join(dir, targetsDir), flags); err != nil {
		errs = append(errs, err)
	}
	if err := removeState(bundle); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// removeState removes bundle's mount manager state, unless something is still mounted below it:
// a writable layer's image (mkfs) may be mounted there, and removing its files would destroy the
// container's data rather than free a mount point.
func removeState(bundle string) error {
	dir, err := mount.CanonicalizePath(filepath.Join(bundle, StateDir))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	// mountinfo names mount points by their canonical paths.
	mounted, err := mountinfo.GetMounts(mountinfo.PrefixFilter(dir))
	if err != nil {
		return err
	}
	if len(mounted) > 0 {
		return fmt.Errorf("%s: %d mounts left, not removed (first: %s)", dir, len(mounted), mounted[0].Mountpoint)
	}
	return os.RemoveAll(dir)
}
