//go:build linux && !amd64 && !arm64

package pod

import (
	"fmt"
	"runtime"

	"github.com/containerd/errdefs"
)

// holderImage: the holder's machine code exists for amd64 and arm64 only.
func holderImage() ([]byte, error) {
	return nil, fmt.Errorf("pause-less pods not supported on %s: %w", runtime.GOARCH, errdefs.ErrNotImplemented)
}
