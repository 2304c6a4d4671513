//go:build linux

package task

import (
	"context"
	"fmt"

	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/custom-shim/containerd-shim-custom-v1/process"
)

// Checkpoint dumps a container's processes with the OCI runtime's checkpoint (criu) into the
// ImagePath of the options, else r.Path, else the runtime options' CriuImagePath. With the
// options' Exit the container stops afterwards and its TaskExit follows as usual.
func (s *service) Checkpoint(ctx context.Context, r *taskAPI.CheckpointTaskRequest) (*emptypb.Empty, error) {
	c, err := s.get(r.ID)
	if err != nil {
		return nil, err
	}
	cfg, err := process.DecodeCheckpointOptions(r.GetOptions().GetTypeUrl(), r.GetOptions().GetValue())
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", r.ID, err)
	}
	// The options' ImagePath wins: containerd 2.x passes it as r.Path too, but 1.6 always
	// passes a temporary dir there, which it then archives into its content store.
	if cfg.ImagePath == "" {
		cfg.ImagePath = r.Path
	}
	if err := c.Init.Checkpoint(ctx, cfg); err != nil {
		return nil, err
	}
	return empty, nil
}
