//go:build linux

package task

import (
	"context"
	"fmt"

	"github.com/containerd/errdefs"

	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"google.golang.org/protobuf/types/known/emptypb"
)

// resizer is a process that may have a terminal (process.Init and process.Exec).
type resizer interface {
	Resize(width, height uint32) error
}

// ResizePty sets the window size of a process's terminal. A process without a terminal is
// FailedPrecondition (the reference answers success and does nothing: no client of containerd
// resizes a process it did not give a terminal, so an error tells a confused caller the truth);
// an unknown container or exec is NotFound.
func (s *service) ResizePty(_ context.Context, r *taskAPI.ResizePtyRequest) (*emptypb.Empty, error) {
	_, p, err := s.getProcess(r.ID, r.ExecID)
	if err != nil {
		return nil, err
	}
	if !p.Stdio().Terminal {
		return nil, fmt.Errorf("resize %s: it has no terminal: %w", processName(r.ID, r.ExecID), errdefs.ErrFailedPrecondition)
	}
	if rz, ok := p.(resizer); ok {
		if err := rz.Resize(r.Width, r.Height); err != nil {
			return nil, err
		}
	}
	return empty, nil
}
