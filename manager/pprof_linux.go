//go:build linux && shim_pprof

package manager

import (
	"context"
	"strings"

	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/shim"
)

// debugSocketArgs (the shim_pprof build) names the socket a debug server serves pprof on:
// pkg/shim listens there when it runs with -debug and a "pprof" plugin is registered
// (cmd/containerd-shim-custom-v1/pprof.go). The address is the one `ctr shim --id <group>
// pprof` dials: the group's socket address computed with debug=true, under the same socket
// root as the server's socket. A stale socket of a server that died is removed first, or
// pkg/shim could not listen. pkg/shim removes the socket when the server exits.
func debugSocketArgs(cfg *startConfig, group string) []string {
	root := defaultSocketRoot
	if cfg.socketDir != "" {
		root = cfg.socketDir
	}
	ctx := namespaces.WithNamespace(context.Background(), cfg.namespace)
	addr, err := shim.CreateSocketAddress(ctx, root, cfg.grpcAddress, group, true)
	if err != nil {
		return nil
	}
	if !shim.CanConnect(addr) {
		_ = shim.RemoveSocket(addr)
	}
	return []string{"-debug-socket", strings.TrimPrefix(addr, "unix://")}
}
