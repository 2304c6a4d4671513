//go:build linux

package task

import (
	"context"

	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/containerd/api/types/task"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/plugins"
	"github.com/containerd/plugin"
	"github.com/containerd/plugin/registry"
	"github.com/containerd/ttrpc"

	"github.com/custom-shim/containerd-shim-custom-v1/lifetime"
	"github.com/custom-shim/containerd-shim-custom-v1/pod"
)

// The ttrpc service names this shim answers to. containerd 2.x speaks v3; 1.6/1.7 speak v2.
// Both have the same messages on the wire, so one method table serves both.
const (
	serviceV3 = "containerd.task.v3.Task"
	serviceV2 = "containerd.task.v2.Task"
)

type taskStatus = task.Status

const (
	statusUnknown = task.Status_UNKNOWN
	statusCreated = task.Status_CREATED
	statusRunning = task.Status_RUNNING
	statusStopped = task.Status_STOPPED
	statusPaused  = task.Status_PAUSED
	statusPausing = task.Status_PAUSING
)

func init() {
	registry.Register(&plugin.Registration{
		Type:     plugins.TTRPCPlugin,
		ID:       "task",
		Requires: []plugin.Type{plugins.InternalPlugin, lifetime.PluginType},
		InitFn: func(ic *plugin.InitContext) (any, error) {
			life, err := lifetime.FromPlugins(ic)
			if err != nil {
				return nil, err
			}
			// The pause-less pods, when the Sandbox service is built in (cmd links it).
			var pods members
			if p, err := ic.GetByID(plugins.InternalPlugin, pod.PluginID); err == nil {
				pods = p.(members)
			}
			// Events go to containerd through our own publisher (publish.go), not pkg/shim's.
			pub := newRemotePublisher(ic.Properties[plugins.PropertyTTRPCAddress])
			return newService(ic.Context, pub, life, pods), nil
		},
	})
}

var _ taskAPI.TTRPCTaskService = (*service)(nil)

// RegisterTTRPC registers the Task service under its v3 and v2 names.
func (s *service) RegisterTTRPC(server *ttrpc.Server) error {
	desc := &ttrpc.ServiceDesc{Methods: s.methods()}
	server.RegisterService(serviceV3, desc)
	server.RegisterService(serviceV2, desc)
	return nil
}

func (s *service) methods() map[string]ttrpc.Method {
	return map[string]ttrpc.Method{
		"State":      method(s.State),
		"Create":     s.trimAfter(method(s.Create)),
		"Start":      s.trimAfter(method(s.Start)),
		"Delete":     s.trimAfter(method(s.Delete)),
		"Pids":       method(s.Pids),
		"Pause":      method(s.Pause),
		"Resume":     method(s.Resume),
		"Checkpoint": method(s.Checkpoint),
		"Kill":       method(s.Kill),
		"Exec":       method(s.Exec),
		"ResizePty":  method(s.ResizePty),
		"CloseIO":    method(s.CloseIO),
		"Update":     method(s.Update),
		"Wait":       method(s.Wait),
		"Stats":      method(s.Stats),
		"Connect":    method(s.Connect),
		"Shutdown":   method(s.Shutdown),
	}
}

// method adapts a typed handler to a ttrpc method.
func method[Req any, PReq interface{ *Req }, Resp any](fn func(context.Context, PReq) (Resp, error)) ttrpc.Method {
	return func(ctx context.Context, unmarshal func(any) error) (any, error) {
		req := PReq(new(Req))
		if err := unmarshal(req); err != nil {
			return nil, err
		}
		return fn(ctx, req)
	}
}

// trimAfter arms the shim's memory trim when m returns: these are the requests that start or end
// processes, after which the shim is idle until the next.
func (s *service) trimAfter(m ttrpc.Method) ttrpc.Method {
	return func(ctx context.Context, unmarshal func(any) error) (any, error) {
		defer s.trim.After()
		return m(ctx, unmarshal)
	}
}

// namespaceOf returns the request's namespace, else the shim's.
func namespaceOf(ctx, shimCtx context.Context) (string, bool) {
	if ns, ok := namespaces.Namespace(ctx); ok {
		return ns, true
	}
	return namespaces.Namespace(shimCtx)
}
