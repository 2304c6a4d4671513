//go:build linux

package task

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	eventstypes "github.com/containerd/containerd/api/events"
	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/containerd/v2/pkg/protobuf"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/types/known/emptypb"

	shimio "github.com/custom-shim/containerd-shim-custom-v1/io"
	"github.com/custom-shim/containerd-shim-custom-v1/lifetime"
	"github.com/custom-shim/containerd-shim-custom-v1/process"
)

// Exec adds an exec process to a container; Start runs it.
func (s *service) Exec(_ context.Context, r *taskAPI.ExecProcessRequest) (*emptypb.Empty, error) {
	c, err := s.get(r.ID)
	if err != nil {
		return nil, err
	}
	if err := validID("exec", r.ExecID); err != nil {
		return nil, err
	}
	var spec specs.Process
	if r.Spec == nil || json.Unmarshal(r.Spec.GetValue(), &spec) != nil {
		return nil, fmt.Errorf("exec %s in container %s: invalid process spec: %w", r.ExecID, r.ID, errdefs.ErrInvalidArgument)
	}
	if err := process.ValidateProcess(&spec); err != nil {
		return nil, fmt.Errorf("exec %s in container %s: %w", r.ExecID, r.ID, err)
	}
	// The request decides the terminal: containerd's client asks for one (cio.WithTerminal)
	// whatever the process spec says, and the OCI runtime goes by the spec.
	spec.Terminal = r.Terminal
	stdio := shimio.Stdio{Stdin: r.Stdin, Stdout: r.Stdout, Stderr: r.Stderr, Terminal: r.Terminal}
	if _, err := c.AddExec(r.ExecID, &spec, stdio); err != nil {
		return nil, err
	}
	s.events.send(&eventstypes.TaskExecAdded{ContainerID: r.ID, ExecID: r.ExecID})
	return empty, nil
}

// State reports a process's state.
func (s *service) State(_ context.Context, r *taskAPI.StateRequest) (*taskAPI.StateResponse, error) {
	c, p, err := s.getProcess(r.ID, r.ExecID)
	if err != nil {
		return nil, err
	}
	status, at := p.Exit()
	sio := p.Stdio()
	return &taskAPI.StateResponse{
		ID:         p.ID(),
		Bundle:     c.Init.Bundle(),
		Pid:        uint32(p.Pid()),
		Status:     apiStatus(p.State()),
		Stdin:      sio.Stdin,
		Stdout:     sio.Stdout,
		Stderr:     sio.Stderr,
		Terminal:   sio.Terminal,
		ExitStatus: uint32(status),
		ExitedAt:   protobuf.ToTimestamp(at),
		ExecID:     r.ExecID,
	}, nil
}

// Kill signals a process; with All, every process of the container.
func (s *service) Kill(ctx context.Context, r *taskAPI.KillRequest) (*emptypb.Empty, error) {
	_, p, err := s.getProcess(r.ID, r.ExecID)
	if err != nil {
		return nil, err
	}
	if r.Signal > maxSignal {
		return nil, fmt.Errorf("kill %s: invalid signal %d: %w", processName(r.ID, r.ExecID), r.Signal, errdefs.ErrInvalidArgument)
	}
	if err := p.Kill(ctx, r.Signal, r.All); err != nil {
		return nil, err
	}
	return empty, nil
}

// CloseIO closes the shim's hold on a process's stdin.
func (s *service) CloseIO(_ context.Context, r *taskAPI.CloseIORequest) (*emptypb.Empty, error) {
	_, p, err := s.getProcess(r.ID, r.ExecID)
	if err != nil {
		return nil, err
	}
	if r.Stdin {
		if err := p.CloseStdin(); err != nil {
			return nil, fmt.Errorf("container %s: close stdin: %w", r.ID, err)
		}
	}
	return empty, nil
}

// Wait blocks until the process has exited.
func (s *service) Wait(ctx context.Context, r *taskAPI.WaitRequest) (*taskAPI.WaitResponse, error) {
	_, p, err := s.getProcess(r.ID, r.ExecID)
	if err != nil {
		return nil, err
	}
	select {
	case <-p.Done():
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	status, at := p.Exit()
	return &taskAPI.WaitResponse{ExitStatus: uint32(status), ExitedAt: protobuf.ToTimestamp(at)}, nil
}

// Connect returns the shim's and the init's pids. Asked without a container id (the start
// action's probe), Version says whether the shim is shutting down (lifetime.ClosingVersion).
func (s *service) Connect(_ context.Context, r *taskAPI.ConnectRequest) (*taskAPI.ConnectResponse, error) {
	if r.ID == "" {
		resp := &taskAPI.ConnectResponse{ShimPid: uint32(os.Getpid())}
		if s.life.Closing() {
			resp.Version = lifetime.ClosingVersion
		}
		return resp, nil
	}
	var pid int
	if c, err := s.get(r.ID); err == nil {
		pid = c.Init.Pid()
	}
	return &taskAPI.ConnectResponse{ShimPid: uint32(os.Getpid()), TaskPid: uint32(pid)}, nil
}

// Shutdown stops the shim once it serves no container; until then it is a no-op.
//
// A container kept only for the retry of an unanswered Delete does not hold the shim up: a
// Shutdown means containerd took a Delete's answer (it may have read the late one after all) or
// has deleted the last other container of a group; if containerd still holds a record of the
// kept one, its handling of a shim that went away cleans that record up.
func (s *service) Shutdown(ctx context.Context, r *taskAPI.ShutdownRequest) (*emptypb.Empty, error) {
	// containerd sends Shutdown with a task's id after its Delete; a caller may send it with a
	// pod's id to end a sandbox's shim through the Task service: the pod goes first (its Release
	// leaves nothing behind).
	if id := r.GetID(); s.pods != nil && id != "" {
		if err := s.pods.Shutdown(ctx, id); err != nil && !errdefs.IsNotFound(err) {
			log.G(ctx).WithError(err).WithField("sandbox_id", id).Warn("shutdown: release the pod")
		}
	}
	s.life.ShutdownIfIdle()
	return empty, nil
}
