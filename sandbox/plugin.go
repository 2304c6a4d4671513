//go:build linux

package sandbox

import (
	sandboxAPI "github.com/containerd/containerd/api/runtime/sandbox/v1"
	"github.com/containerd/containerd/v2/plugins"
	"github.com/containerd/plugin"
	"github.com/containerd/plugin/registry"
	"github.com/containerd/ttrpc"

	"github.com/custom-shim/containerd-shim-custom-v1/lifetime"
	"github.com/custom-shim/containerd-shim-custom-v1/pod"
)

func init() {
	// The shim's pods, which the Task service uses too (its members' specs; a pod its Shutdown
	// names).
	registry.Register(&plugin.Registration{
		Type: plugins.InternalPlugin,
		ID:   pod.PluginID,
		InitFn: func(*plugin.InitContext) (any, error) {
			return pod.NewSet(), nil
		},
	})
	registry.Register(&plugin.Registration{
		Type:     plugins.TTRPCPlugin,
		ID:       "sandbox",
		Requires: []plugin.Type{plugins.InternalPlugin, lifetime.PluginType},
		InitFn: func(ic *plugin.InitContext) (any, error) {
			pods, err := ic.GetByID(plugins.InternalPlugin, pod.PluginID)
			if err != nil {
				return nil, err
			}
			life, err := lifetime.FromPlugins(ic)
			if err != nil {
				return nil, err
			}
			return newService(pods.(*pod.Set), life), nil
		},
	})
}

// RegisterTTRPC registers the Sandbox service on the shim's server.
func (s *service) RegisterTTRPC(server *ttrpc.Server) error {
	sandboxAPI.RegisterTTRPCSandboxService(server, s)
	return nil
}
