//go:build linux

package process

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/errdefs"
	runc "github.com/containerd/go-runc"
	"github.com/containerd/log"
	"google.golang.org/protobuf/proto"
)

// Checkpoint and restore go through the OCI runtime's criu support (`runc checkpoint` and
// `runc restore`). A restore is not a state of its own: an Init created from a checkpoint is
// Created with a pending restore (Init.restore), and Start runs `restore` instead of `start`.

// Files this package writes into a bundle for checkpoint/restore.
const (
	// criuWorkDir is the default criu work directory, inside the bundle, when neither the
	// checkpoint request nor the runtime options name one. It is removed after a checkpoint.
	criuWorkDir = "criu-work"
	// CriuDumpLog is the copy, in the bundle, of criu's dump.log of a failed checkpoint.
	CriuDumpLog = "criu-dump.log"
	// CriuRestoreLog is the copy, in the bundle, of criu's restore.log of a failed restore.
	CriuRestoreLog = "criu-restore.log"
)

// checkpointOptionsType is the type name of the checkpoint options containerd sends
// (client.WithCheckpointTaskExit, ctr tasks checkpoint --exit/--image-path/--work-path).
const checkpointOptionsType = "containerd.runc.v1.CheckpointOptions"

// CheckpointConfig describes one checkpoint of a container's init.
type CheckpointConfig struct {
	// ImagePath is where criu writes the images; empty means the runtime options' CriuImagePath.
	ImagePath string
	// WorkPath holds criu's work files and dump.log; empty means the runtime options'
	// CriuWorkPath, else a temporary bundle/criu-work.
	WorkPath string
	// ParentPath is the image of a previous (pre-)dump, for incremental checkpoints.
	ParentPath string
	// Exit: the container stops after the checkpoint; otherwise it is left running.
	Exit                bool
	OpenTCP             bool
	ExternalUnixSockets bool
	Terminal            bool
	FileLocks           bool
	EmptyNamespaces     []string
}

// DecodeCheckpointOptions turns the options of a Checkpoint request into a CheckpointConfig,
// deciding by type URL: containerd's runc CheckpointOptions, or nothing (defaults: leave the
// container running). Any other type is an InvalidArgument error naming the type.
func DecodeCheckpointOptions(typeURL string, value []byte) (CheckpointConfig, error) {
	name := typeURL[strings.LastIndex(typeURL, "/")+1:]
	switch name {
	case "":
		if len(value) != 0 {
			return CheckpointConfig{}, fmt.Errorf("checkpoint options without a type URL: %w", errdefs.ErrInvalidArgument)
		}
		return CheckpointConfig{}, nil
	case checkpointOptionsType:
		var o options.CheckpointOptions
		if err := proto.Unmarshal(value, &o); err != nil {
			return CheckpointConfig{}, fmt.Errorf("decode checkpoint options %s: %v: %w", name, err, errdefs.ErrInvalidArgument) //nolint:errorlint // cause as text: one class in the chain
		}
		return CheckpointConfig{
			ImagePath:           o.GetImagePath(),
			WorkPath:            o.GetWorkPath(),
			ParentPath:          o.GetParentPath(),
			Exit:                o.GetExit(),
			OpenTCP:             o.GetOpenTcp(),
			ExternalUnixSockets: o.GetExternalUnixSockets(),
			Terminal:            o.GetTerminal(),
			FileLocks:           o.GetFileLocks(),
			EmptyNamespaces:     o.GetEmptyNamespaces(),
		}, nil
	default:
		return CheckpointConfig{}, fmt.Errorf("unsupported checkpoint options type %q (want %s): %w",
			typeURL, checkpointOptionsType, errdefs.ErrInvalidArgument)
	}
}

// Checkpoint dumps the running (or paused) container with the OCI runtime's checkpoint.
// With cfg.Exit the runtime stops the container and removes its state: the init's exit then
// arrives like any other, and Delete tolerates the runtime's "does not exist".
// On failure the error names a copy of criu's dump.log in the bundle (criu-dump.log).
func (i *Init) Checkpoint(ctx context.Context, cfg CheckpointConfig) error {
	i.opMu.Lock()
	defer i.opMu.Unlock()
	switch st := i.State(); st {
	case Running, Paused:
	default:
		return fmt.Errorf("container %s is %s: cannot checkpoint: %w", i.id, st, errdefs.ErrFailedPrecondition)
	}
	image := cfg.ImagePath
	if image == "" {
		image = i.opts.CriuImagePath
	}
	if image == "" {
		return fmt.Errorf("container %s: checkpoint needs an image path (request path, ImagePath or CriuImagePath): %w",
			i.id, errdefs.ErrInvalidArgument)
	}
	work := cfg.WorkPath
	if work == "" {
		work = i.opts.CriuWorkPath
	}
	if work == "" {
		work = filepath.Join(i.bundle, criuWorkDir)
		defer func() { _ = os.RemoveAll(work) }()
	}
	if err := os.MkdirAll(work, 0o700); err != nil {
		return fmt.Errorf("container %s: create criu work dir: %v: %w", i.id, err, errdefs.ErrInvalidArgument) //nolint:errorlint // cause as text: one class in the chain
	}
	var actions []runc.CheckpointAction
	if !cfg.Exit {
		actions = append(actions, runc.LeaveRunning)
	}
	m := markLog(i.rt.Log)
	err := i.rt.Checkpoint(ctx, i.id, &runc.CheckpointOpts{
		ImagePath:                image,
		WorkDir:                  work,
		ParentPath:               cfg.ParentPath,
		AllowOpenTCP:             cfg.OpenTCP,
		AllowExternalUnixSockets: cfg.ExternalUnixSockets,
		AllowTerminal:            cfg.Terminal,
		FileLocks:                cfg.FileLocks,
		EmptyNamespaces:          cfg.EmptyNamespaces,
	}, actions...)
	if err != nil {
		where := i.keepCriuLog(ctx, filepath.Join(work, "dump.log"), CriuDumpLog)
		return criuFailure(m.wrap(err, fmt.Sprintf("container %s: OCI runtime checkpoint failed", i.id)), where)
	}
	return nil
}

// prepareRestore records, at Create, the restore that Start will run: the container is
// Created, with no pid, until then.
func (i *Init) prepareRestore(cfg InitConfig, pidFile string) {
	i.restore = &runc.RestoreOpts{
		CheckpointOpts: runc.CheckpointOpts{
			ImagePath:  cfg.Checkpoint,
			ParentPath: cfg.ParentCheckpoint,
			WorkDir:    i.opts.CriuWorkPath,
		},
		PidFile: pidFile,
		NoPivot: i.opts.NoPivotRoot,
		Detach:  true,
		// The restored init must be reparented to the shim (a subreaper), which reaps it.
		NoSubreaper: true,
	}
	if i.restore.WorkDir == "" {
		// Kept until the bundle goes: criu's restore.log is read there after a failure.
		i.restore.WorkDir = filepath.Join(i.bundle, criuWorkDir)
	}
	if io := runtimeIO(i.io); io != nil {
		i.restore.IO = io
	}
}

// startRestore runs the deferred `restore --detach`; it is Start for a container created from
// a checkpoint. The caller holds opMu and has checked the state is Created.
//
// With a terminal, the runtime gets a console socket: criu restores the terminal's slave side
// with a new pty whose master (criu's orphan pts master) the runtime sends there, and the
// console copier starts on it, as after a create.
func (i *Init) startRestore(ctx context.Context) error {
	opts := *i.restore
	work := opts.WorkDir
	if err := os.MkdirAll(work, 0o700); err != nil {
		return fmt.Errorf("container %s: create criu work dir: %v: %w", i.id, err, errdefs.ErrInvalidArgument) //nolint:errorlint // cause as text: one class in the chain
	}
	var sock *runc.Socket
	if i.stdio.Terminal {
		s, err := runc.NewTempConsoleSocket()
		if err != nil {
			return fmt.Errorf("container %s: create console socket: %w", i.id, err)
		}
		defer closeSocket(s)
		sock, opts.ConsoleSocket = s, s
	}
	m := markLog(i.rt.Log)
	if _, err := i.rt.Restore(ctx, i.id, i.bundle, &opts); err != nil {
		where := i.keepCriuLog(ctx, filepath.Join(work, "restore.log"), CriuRestoreLog)
		return criuFailure(m.wrap(err, fmt.Sprintf("container %s: OCI runtime restore failed", i.id)), where)
	}
	pid, err := runc.ReadPidFile(opts.PidFile)
	if err != nil {
		return fmt.Errorf("container %s: read pid file after restore: %v: %w", i.id, err, errdefs.ErrUnknown) //nolint:errorlint // cause as text: one class in the chain
	}
	i.setPid(pid)
	if err := attachConsole("container "+i.id, i.io, sock); err != nil {
		return err
	}
	i.restore = nil
	if i.cg, err = loadCgroup(pid); err != nil {
		log.G(ctx).WithError(err).WithField("container_id", i.id).Warn("load cgroup: no stats for this container")
	}
	i.cas(Created, Running) // false if it exited meanwhile: it stays Stopped
	return nil
}

// Restoring reports whether the container was created from a checkpoint and not started yet.
func (i *Init) Restoring() bool {
	i.opMu.Lock()
	defer i.opMu.Unlock()
	return i.restore != nil
}

// keepCriuLog copies a criu log into the bundle as name, so that it outlives the work dir,
// and returns a phrase saying where to read it.
func (i *Init) keepCriuLog(ctx context.Context, src, name string) string {
	dst := filepath.Join(i.bundle, name)
	if err := copyFile(dst, src); err != nil {
		log.G(ctx).WithError(err).WithField("container_id", i.id).Warn("keep criu log")
		return fmt.Sprintf("criu log: %s (criu wrote none)", src)
	}
	return "criu log: " + dst
}

// criuFailure adds where criu's log is to a failed checkpoint or restore. Only the first line
// of the runtime's message is kept: criu's own output follows it and belongs in the log. A
// criu the runtime cannot run at all (runc: "CRIU version check failed", its first step, e.g.
// no criu on PATH) is FailedPrecondition: the node lacks what the request needs.
func criuFailure(err error, where string) error {
	msg, _, _ := strings.Cut(err.Error(), "\n")
	var class error = errdefs.ErrUnknown
	switch {
	case errdefs.IsNotFound(err):
		class = errdefs.ErrNotFound
	case strings.Contains(strings.ToLower(msg), "criu version check failed"):
		class = errdefs.ErrFailedPrecondition
	}
	return fmt.Errorf("%s (%s): %w", msg, where, class)
}

func copyFile(dst, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer func() { _ = in.Close() }()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		_ = out.Close()
		return err
	}
	return out.Close()
}
