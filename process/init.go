//go:build linux

package process

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"

	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/errdefs"
	runc "github.com/containerd/go-runc"
	"github.com/containerd/log"
	"golang.org/x/sys/unix"

	"github.com/custom-shim/containerd-shim-custom-v1/bundle"
	shimio "github.com/custom-shim/containerd-shim-custom-v1/io"
	"github.com/custom-shim/containerd-shim-custom-v1/rootfs"
)

// InitConfig describes a container to create.
type InitConfig struct {
	ID     string
	Bundle string
	// Spec is the bundle's spec (bundle.Read, CheckSpec): CreateInit writes it back with the
	// request's terminal, and what else the caller changed, before the OCI runtime reads it.
	Spec      *bundle.Spec
	Namespace string
	Rootfs    []mount.Mount
	Stdio     shimio.Stdio
	Options   *Options
	// Checkpoint, if set, is a checkpoint image to restore from: the OCI runtime's restore
	// then runs at Start instead of create/start (see checkpoint.go).
	Checkpoint       string
	ParentCheckpoint string
}

// Init is a container's init process.
type Init struct {
	proc
	// opMu serialises lifecycle operations (start, pause, resume, delete); never taken on the exit path.
	opMu sync.Mutex

	id      string
	bundle  string
	rt      *runc.Runc
	opts    *Options
	stdio   shimio.Stdio
	io      *shimio.ProcessIO
	ioCfg   shimio.Config // for the stdio of this container's execs too
	mounted bool          // rootfs mounted by us; only touched under opMu or during create
	// cg is the container's cgroup, loaded after create; nil if it could not be found.
	cg cgroup
	// sharedPID: the container has no PID namespace of its own, so its init's exit does not
	// end its other processes.
	sharedPID bool
	// restore is the pending restore of a container created from a checkpoint; nil otherwise
	// (and once started). Guarded by opMu.
	restore *runc.RestoreOpts
}

// CreateInit mounts the rootfs, opens the stdio and runs the OCI runtime's create. On error
// everything it did is undone.
func CreateInit(ctx context.Context, cfg InitConfig) (_ *Init, retErr error) {
	i := &Init{
		proc:   newProc(),
		id:     cfg.ID,
		bundle: cfg.Bundle,
		rt:     NewRuntime(cfg.Options, cfg.Bundle, cfg.Namespace),
		opts:   cfg.Options,
		stdio:  cfg.Stdio,
		ioCfg:  shimio.Config{ID: cfg.ID, Namespace: cfg.Namespace, UID: cfg.Options.IoUID, GID: cfg.Options.IoGID},
	}
	defer func() {
		if retErr != nil {
			i.release(ctx)
		}
	}()
	if err := cfg.Spec.SetTerminal(cfg.Stdio.Terminal); err != nil {
		return nil, fmt.Errorf("container %s: %w", cfg.ID, err)
	}
	if err := cfg.Spec.Write(); err != nil {
		return nil, fmt.Errorf("container %s: write OCI spec: %w", cfg.ID, err)
	}
	i.sharedPID = !cfg.Spec.HasOwnPIDNamespace()
	if err := i.mountRootfs(ctx, cfg.Rootfs); err != nil {
		return nil, err
	}
	pio, sock, err := openIO("container "+cfg.ID, cfg.Stdio, i.ioCfg) // IO/terminal: process/io.go
	if err != nil {
		return nil, err
	}
	defer closeSocket(sock)
	i.io = pio
	pidFile := filepath.Join(cfg.Bundle, InitPidFile)
	if cfg.Checkpoint != "" {
		i.prepareRestore(cfg, pidFile) // deferred to Start
		return i, nil
	}
	m := markLog(i.rt.Log)
	err = i.rt.Create(ctx, cfg.ID, cfg.Bundle, &runc.CreateOpts{
		PidFile:       pidFile,
		IO:            runtimeIO(pio),
		ConsoleSocket: consoleSocket(sock),
		NoPivot:       cfg.Options.NoPivotRoot,
		NoNewKeyring:  cfg.Options.NoNewKeyring,
	})
	if err != nil {
		return nil, m.wrap(err, fmt.Sprintf("container %s: OCI runtime create failed", cfg.ID))
	}
	pid, err := runc.ReadPidFile(pidFile)
	if err != nil {
		return nil, fmt.Errorf("container %s: read pid file: %w", cfg.ID, err)
	}
	i.setPid(pid)
	if err := attachConsole("container "+cfg.ID, pio, sock); err != nil {
		return nil, err
	}
	if i.cg, err = loadCgroup(pid); err != nil {
		log.G(ctx).WithError(err).WithField("container_id", cfg.ID).Warn("load cgroup: no stats for this container")
	}
	return i, nil
}

// mountRootfs mounts the rootfs on the bundle's rootfs directory, applying containerd's mount
// transforms the mounts carry (package rootfs).
func (i *Init) mountRootfs(ctx context.Context, mounts []mount.Mount) error {
	if err := rootfs.Mount(ctx, i.id, i.bundle, mounts); err != nil {
		return err
	}
	i.mounted = len(mounts) > 0
	return nil
}

// release undoes create: forced runtime delete, stdio, rootfs.
func (i *Init) release(ctx context.Context) {
	if i.Pid() != 0 {
		if err := i.rt.Delete(ctx, i.id, &runc.DeleteOpts{Force: true}); err != nil {
			log.G(ctx).WithError(err).WithField("container_id", i.id).Warn("cleanup after failed create")
		}
	}
	if i.io != nil {
		_ = i.io.Close()
	}
	i.unmount(ctx)
}

func (i *Init) unmount(ctx context.Context) {
	if !i.mounted {
		return
	}
	if err := rootfs.Unmount(ctx, i.id, i.bundle, unix.MNT_DETACH); err != nil {
		log.G(ctx).WithError(err).WithField("container_id", i.id).Warn("unmount rootfs")
		return
	}
	i.mounted = false
}

// ID returns the container id.
func (i *Init) ID() string { return i.id }

// Stdio returns the stdio the client asked for.
func (i *Init) Stdio() shimio.Stdio { return i.stdio }

// Start runs the OCI runtime's start. A process that exited meanwhile stays Stopped.
func (i *Init) Start(ctx context.Context) error {
	i.opMu.Lock()
	defer i.opMu.Unlock()
	if st := i.State(); st != Created {
		return fmt.Errorf("container %s is %s, not created: %w", i.id, st, errdefs.ErrFailedPrecondition)
	}
	if i.restore != nil {
		return i.startRestore(ctx)
	}
	m := markLog(i.rt.Log)
	if err := i.rt.Start(ctx, i.id); err != nil {
		return m.wrap(err, fmt.Sprintf("container %s: OCI runtime start failed", i.id))
	}
	i.cas(Created, Running)
	return nil
}

// Kill signals the container's init, or with all every process of the container, through the
// OCI runtime: a runtime named by BinaryName may give a signal a meaning of its own (a sandboxed
// runtime's init pid is not the application), and runc checks the init's start time before it
// signals, so it never hits a process that took an exited init's pid. Before that, an init
// already reaped, or gone by its pidfd, is NotFound without a runtime call.
func (i *Init) Kill(ctx context.Context, sig uint32, all bool) error {
	if st := i.State(); st == Stopped || st == Deleted || !i.alive() {
		return fmt.Errorf("container %s: %w", i.id, errProcessGone)
	}
	m := markLog(i.rt.Log)
	err := i.rt.Kill(ctx, i.id, int(sig), &runc.KillOpts{All: all})
	if err != nil {
		return fmt.Errorf("container %s: %w", i.id, m.killError(err))
	}
	return nil
}

// Delete removes a stopped (or never started) container: runtime state, stdio, rootfs.
func (i *Init) Delete(ctx context.Context) error {
	i.opMu.Lock()
	defer i.opMu.Unlock()
	st := i.State()
	switch st {
	case Created, Stopped:
	case Deleted:
		return fmt.Errorf("container %s: already deleted: %w", i.id, errdefs.ErrNotFound)
	default:
		return fmt.Errorf("container %s is %s: cannot delete: %w", i.id, st, errdefs.ErrFailedPrecondition)
	}
	// A stopped container is deleted without --force, as the reference shim does: runc's
	// forced delete goes through its kill path, which sleeps 100 ms before it looks again,
	// for every container. Should runc not see it stopped yet, force it.
	m := markLog(i.rt.Log)
	err := i.rt.Delete(ctx, i.id, &runc.DeleteOpts{Force: st == Created})
	if err != nil && st == Stopped && !errdefs.IsNotFound(m.wrap(err, "delete")) {
		m = markLog(i.rt.Log)
		err = i.rt.Delete(ctx, i.id, &runc.DeleteOpts{Force: true})
	}
	if err != nil {
		if werr := m.wrap(err, "delete"); !errdefs.IsNotFound(werr) {
			return fmt.Errorf("container %s: OCI runtime delete failed: %w", i.id, werr)
		}
	}
	closeIO(ctx, i.io, i.id, "")
	i.unmount(ctx)
	return i.markDeleted()
}

// CloseStdin releases the shim's hold on the stdin fifo (CloseIO).
func (i *Init) CloseStdin() error {
	if i.io == nil {
		return nil
	}
	return i.io.CloseStdin()
}

// WaitOutputTaken waits, bounded, until the init's output has been read (Process).
func (i *Init) WaitOutputTaken() { waitOutputTaken(i.io) }

// Pids lists the pids of the container's processes.
func (i *Init) Pids(ctx context.Context) ([]int, error) {
	m := markLog(i.rt.Log)
	pids, err := i.rt.Ps(ctx, i.id)
	if err != nil {
		return nil, m.wrap(err, fmt.Sprintf("container %s: OCI runtime ps failed", i.id))
	}
	return pids, nil
}

// Runtime returns the OCI runtime client of the container.
func (i *Init) Runtime() *runc.Runc { return i.rt }

// Bundle returns the bundle directory.
func (i *Init) Bundle() string { return i.bundle }
