//go:build linux

package task

import (
	"context"

	"github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/containerd/api/types/task"
	"github.com/containerd/typeurl/v2"

	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
)

// Pids lists the container's processes, naming the exec each belongs to where there is one.
func (s *service) Pids(ctx context.Context, r *taskAPI.PidsRequest) (*taskAPI.PidsResponse, error) {
	c, err := s.get(r.ID)
	if err != nil {
		return nil, err
	}
	pids, err := c.Init.Pids(ctx)
	if err != nil {
		return nil, err
	}
	infos := make([]*task.ProcessInfo, 0, len(pids))
	for _, pid := range pids {
		pi := &task.ProcessInfo{Pid: uint32(pid)}
		if execID := c.ExecByPid(pid); execID != "" {
			if a, err := typeurl.MarshalAnyToProto(&options.ProcessDetails{ExecID: execID}); err == nil {
				pi.Info = a
			}
		}
		infos = append(infos, pi)
	}
	return &taskAPI.PidsResponse{Processes: infos}, nil
}
