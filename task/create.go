//go:build linux

package task

import (
	"context"
	"fmt"

	eventstypes "github.com/containerd/containerd/api/events"
	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/errdefs"

	"github.com/custom-shim/containerd-shim-custom-v1/bundle"
	shimio "github.com/custom-shim/containerd-shim-custom-v1/io"
	"github.com/custom-shim/containerd-shim-custom-v1/process"
)

// Create creates a container: its init exists, stopped before the user's program, until Start.
func (s *service) Create(ctx context.Context, r *taskAPI.CreateTaskRequest) (*taskAPI.CreateTaskResponse, error) {
	if err := validID("container", r.ID); err != nil {
		return nil, err
	}
	spec, err := bundle.Read(r.Bundle) // read once: CreateInit writes it back with the changes
	if err == nil {
		err = process.CheckSpec(spec)
	}
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", r.ID, err)
	}
	if r.Checkpoint == "" && r.ParentCheckpoint != "" {
		return nil, fmt.Errorf("container %s: parent checkpoint without a checkpoint: %w", r.ID, errdefs.ErrInvalidArgument)
	}
	// A member of one of this shim's pause-less pods gets the pod's files (hosts, resolv.conf,
	// hostname, /dev/shm), which CRI leaves to the sandbox in that mode.
	if s.pods != nil {
		if err := s.pods.PatchMember(spec); err != nil {
			return nil, fmt.Errorf("container %s: %w", r.ID, err)
		}
	}
	opts, err := process.DecodeOptions(r.GetOptions().GetTypeUrl(), r.GetOptions().GetValue())
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", r.ID, err)
	}
	release, err := s.reserve(r.ID)
	if err != nil {
		return nil, err
	}
	if err := process.WriteOptions(r.Bundle, opts); err != nil {
		release(nil)
		return nil, fmt.Errorf("container %s: persist options: %w", r.ID, err)
	}
	ns, _ := namespaceOf(ctx, s.ctx)
	w := s.router.Open(nil)
	init, err := process.CreateInit(ctx, process.InitConfig{
		ID:        r.ID,
		Bundle:    r.Bundle,
		Spec:      spec,
		Namespace: ns,
		Rootfs:    mount.FromProto(r.Rootfs),
		Stdio:     shimio.Stdio{Stdin: r.Stdin, Stdout: r.Stdout, Stderr: r.Stderr, Terminal: r.Terminal},
		Options:   opts,
		// A checkpoint defers the OCI runtime's restore to Start.
		Checkpoint:       r.Checkpoint,
		ParentCheckpoint: r.ParentCheckpoint,
	})
	if err != nil {
		w.Close(nil)
		release(nil)
		return nil, err
	}
	// OOM hook: watch right after create, before start, so an OOM in the first instant is seen.
	// A container restored from a checkpoint has no process before Start: watched there.
	if init.Pid() != 0 {
		s.oom.watch(ctx, r.ID, init)
	}
	c := &container{Container: process.NewContainer(init), id: r.ID, sharedPID: init.SharedPIDNamespace()}
	release(c)
	s.events.send(&eventstypes.TaskCreate{
		ContainerID: r.ID,
		Bundle:      r.Bundle,
		Rootfs:      r.Rootfs,
		IO:          &eventstypes.TaskIO{Stdin: r.Stdin, Stdout: r.Stdout, Stderr: r.Stderr, Terminal: r.Terminal},
		Checkpoint:  r.Checkpoint,
		Pid:         uint32(init.Pid()),
	})
	rp := routed{c: c, p: init, init: true}
	if e, exited := w.Close(&rp); exited {
		s.handleExit(rp, e)
	}
	return &taskAPI.CreateTaskResponse{Pid: uint32(init.Pid())}, nil
}

// Start starts a created init or exec. Its start event is published before its exit event,
// even when the process exits before the runtime call returns.
func (s *service) Start(ctx context.Context, r *taskAPI.StartRequest) (*taskAPI.StartResponse, error) {
	c, p, err := s.getProcess(r.ID, r.ExecID)
	if err != nil {
		return nil, err
	}
	rp := routed{c: c, p: p, init: r.ExecID == ""}
	restored := rp.init && p.Pid() == 0 // created from a checkpoint: Start restores it
	var hold *routed
	if r.ExecID == "" {
		hold = &rp
	} else if err := c.gate.enter(r.ID, r.ExecID); err != nil {
		return nil, err
	}
	w := s.router.Open(hold)
	if err := p.Start(ctx); err != nil {
		e, exited := w.Close(&rp)
		if r.ExecID != "" {
			c.gate.leave()
		} else if exited {
			s.handleExit(rp, e)
		}
		return nil, err
	}
	if r.ExecID == "" {
		if restored {
			s.oom.watch(ctx, r.ID, c.Init) // OOM hook: its process exists only now
		}
		s.events.send(&eventstypes.TaskStart{ContainerID: r.ID, Pid: uint32(p.Pid())})
	} else {
		s.events.send(&eventstypes.TaskExecStarted{ContainerID: r.ID, ExecID: r.ExecID, Pid: uint32(p.Pid())})
	}
	if e, exited := w.Close(&rp); exited {
		s.handleExit(rp, e)
	}
	return &taskAPI.StartResponse{Pid: uint32(p.Pid())}, nil
}
