//go:build linux

package shimtest

import (
	"fmt"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
)

// TestClass: an error is classed alike whether it comes as a gRPC status (straight from the
// shim's socket) or already decoded (containerd's client, or a test that decoded it).
func TestClass(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{nil, "ok"},
		{fmt.Errorf("container c1: %w", errdefs.ErrNotFound), "NotFound"},
		{fmt.Errorf("id: %w", errdefs.ErrInvalidArgument), "InvalidArgument"},
		{fmt.Errorf("exec e1: %w", errdefs.ErrAlreadyExists), "AlreadyExists"},
		{fmt.Errorf("paused: %w", errdefs.ErrFailedPrecondition), "FailedPrecondition"},
		{fmt.Errorf("no: %w", errdefs.ErrNotImplemented), "NotImplemented"},
		{fmt.Errorf("plain"), "Unknown"},
	} {
		wire := errgrpc.ToGRPC(tc.err)
		for name, err := range map[string]error{
			"native": tc.err, "status": wire, "decoded": errgrpc.ToNative(wire),
		} {
			if got := Class(err); got != tc.want {
				t.Errorf("%v (%s): %s, want %s", tc.err, name, got, tc.want)
			}
		}
	}
}
