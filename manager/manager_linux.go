//go:build linux

package manager

import (
	"context"

	bootstrap "github.com/containerd/containerd/api/runtime/bootstrap/v1"
	"github.com/containerd/containerd/v2/pkg/shim"
)

// bootstrapVersion is the shim protocol version announced to containerd ≥ 2.3. Legacy daemons
// get a plain address, which they read as version 2.
const bootstrapVersion = 3

// manager implements shim.Shim: the lifecycle roles pkg/shim.RunShim delegates to us.
type manager struct {
	name string
}

// New returns the shim.Shim for the runtime type name (e.g. "io.containerd.custom.v1"), for
// shim.RunShim. Start is the new-protocol start; Stop is the delete action; Info is -info.
func New(name string) shim.Shim {
	return &manager{name: name}
}

// Name returns the runtime type the binary serves.
func (m *manager) Name() string {
	return m.name
}

// Start starts or joins the shim server described by params (new bootstrap protocol) and
// returns its address as a version-3 ttrpc BootstrapResult. The working directory is the bundle.
func (m *manager) Start(ctx context.Context, params *bootstrap.BootstrapParams) (*bootstrap.BootstrapResult, error) {
	return startBootstrap(ctx, params)
}

// startBootstrap is Start, shared with Main's own handling of the new protocol.
func startBootstrap(ctx context.Context, params *bootstrap.BootstrapParams) (*bootstrap.BootstrapResult, error) {
	opts, err := optionsFromExtensions(params.GetExtensions())
	if err != nil {
		return nil, err
	}
	addr, err := start(ctx, &startConfig{
		id:           params.GetInstanceID(),
		namespace:    params.GetNamespace(),
		grpcAddress:  params.GetContainerdGrpcAddress(),
		ttrpcAddress: params.GetContainerdTtrpcAddress(),
		socketDir:    params.GetSocketDir(),
		debug:        params.GetLogLevel() <= bootstrap.LogLevel_LOG_LEVEL_DEBUG,
		options:      opts,
	})
	if err != nil {
		return nil, err
	}
	return &bootstrap.BootstrapResult{Version: bootstrapVersion, Address: addr, Protocol: "ttrpc"}, nil
}
