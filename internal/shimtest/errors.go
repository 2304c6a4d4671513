//go:build linux

package shimtest

import (
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"google.golang.org/grpc/status"
)

// Class names the errdefs class of an error a client got, from the shim's ttrpc services
// (a gRPC status) or from containerd's client (already decoded): "ok" for nil, "Unknown" for an
// error of no class the shim uses. An error already decoded is taken as it is (decoding it
// again would make it Unknown).
func Class(err error) string {
	if _, isStatus := status.FromError(err); isStatus {
		err = errgrpc.ToNative(err)
	}
	switch {
	case err == nil:
		return "ok"
	case errdefs.IsNotFound(err):
		return "NotFound"
	case errdefs.IsAlreadyExists(err):
		return "AlreadyExists"
	case errdefs.IsFailedPrecondition(err):
		return "FailedPrecondition"
	case errdefs.IsInvalidArgument(err):
		return "InvalidArgument"
	case errdefs.IsNotImplemented(err):
		return "NotImplemented"
	case errdefs.IsUnavailable(err):
		return "Unavailable"
	}
	return "Unknown"
}
