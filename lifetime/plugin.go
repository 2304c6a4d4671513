//go:build linux

package lifetime

import (
	"github.com/containerd/containerd/v2/pkg/shutdown"
	"github.com/containerd/containerd/v2/plugins"
	"github.com/containerd/plugin"
	"github.com/containerd/plugin/registry"
)

// The server's life is a pkg/shim plugin of a type of its own (a plugin may not require its own
// type, and this one requires the internal plugin "shutdown"); its instance is a *Server, which
// the services require.
const (
	PluginType plugin.Type = "io.containerd.custom.v1.lifetime"
	PluginID   string      = "lifetime"
)

func init() {
	registry.Register(&plugin.Registration{
		Type:     PluginType,
		ID:       PluginID,
		Requires: []plugin.Type{plugins.InternalPlugin},
		InitFn: func(ic *plugin.InitContext) (any, error) {
			sd, err := ic.GetByID(plugins.InternalPlugin, "shutdown")
			if err != nil {
				return nil, err
			}
			return New(sd.(shutdown.Service)), nil
		},
	})
}

// FromPlugins returns the server's life from a service plugin's init context (the plugin
// requires PluginType).
func FromPlugins(ic *plugin.InitContext) (*Server, error) {
	life, err := ic.GetByID(PluginType, PluginID)
	if err != nil {
		return nil, err
	}
	return life.(*Server), nil
}
