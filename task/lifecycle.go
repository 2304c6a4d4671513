//go:build linux

package task

import (
	"context"
	"fmt"

	eventstypes "github.com/containerd/containerd/api/events"
	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/errdefs"
	"github.com/containerd/typeurl/v2"
	"google.golang.org/protobuf/types/known/emptypb"
)

// Pause freezes a container.
func (s *service) Pause(ctx context.Context, r *taskAPI.PauseRequest) (*emptypb.Empty, error) {
	c, err := s.get(r.ID)
	if err != nil {
		return nil, err
	}
	if err := c.Init.Pause(ctx); err != nil {
		return nil, err
	}
	s.events.send(&eventstypes.TaskPaused{ContainerID: r.ID})
	return empty, nil
}

// Resume thaws a paused container.
func (s *service) Resume(ctx context.Context, r *taskAPI.ResumeRequest) (*emptypb.Empty, error) {
	c, err := s.get(r.ID)
	if err != nil {
		return nil, err
	}
	if err := c.Init.Resume(ctx); err != nil {
		return nil, err
	}
	s.events.send(&eventstypes.TaskResumed{ContainerID: r.ID})
	return empty, nil
}

// Update changes a container's resource limits.
func (s *service) Update(ctx context.Context, r *taskAPI.UpdateTaskRequest) (*emptypb.Empty, error) {
	c, err := s.get(r.ID)
	if err != nil {
		return nil, err
	}
	if r.Resources == nil {
		return nil, fmt.Errorf("container %s: update without resources: %w", r.ID, errdefs.ErrInvalidArgument)
	}
	if err := c.Init.Update(ctx, r.Resources.GetValue()); err != nil {
		return nil, err
	}
	return empty, nil
}

// Stats returns a container's cgroup metrics, also after its init has exited.
func (s *service) Stats(_ context.Context, r *taskAPI.StatsRequest) (*taskAPI.StatsResponse, error) {
	c, err := s.get(r.ID)
	if err != nil {
		return nil, err
	}
	st, err := c.Init.Stats()
	if err != nil {
		return nil, err
	}
	a, err := typeurl.MarshalAnyToProto(st)
	if err != nil {
		return nil, fmt.Errorf("container %s: marshal stats %T: %w", r.ID, st, err)
	}
	return &taskAPI.StatsResponse{Stats: a}, nil
}
