//go:build linux

package task

import (
	"context"
	"fmt"

	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/errdefs"
	"google.golang.org/protobuf/types/known/emptypb"
)

// The calls below are not implemented yet (issue: full Task API parity). They answer
// Unimplemented, naming the container; Create never does.

func notYet(call, id string) error {
	return fmt.Errorf("%s of container %s is not supported yet: %w", call, id, errdefs.ErrNotImplemented)
}

// Checkpoint is not implemented yet.
func (s *service) Checkpoint(ctx context.Context, r *taskAPI.CheckpointTaskRequest) (*emptypb.Empty, error) {
	return nil, notYet("checkpoint", r.ID)
}

// ResizePty is not implemented yet.
func (s *service) ResizePty(ctx context.Context, r *taskAPI.ResizePtyRequest) (*emptypb.Empty, error) {
	return nil, notYet("resize of the pty", r.ID)
}
