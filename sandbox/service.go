//go:build linux

package sandbox

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"sync/atomic"
	"time"

	sandboxAPI "github.com/containerd/containerd/api/runtime/sandbox/v1"
	"github.com/containerd/containerd/api/types"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	"github.com/containerd/typeurl/v2"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/custom-shim/containerd-shim-custom-v1/lifetime"
	"github.com/custom-shim/containerd-shim-custom-v1/pod"
)

// The states SandboxStatus reports: the CRI plugin reads them as CRI's PodSandboxState names.
const (
	stateReady    = "SANDBOX_READY"
	stateNotReady = "SANDBOX_NOTREADY"
)

// service implements the Sandbox API for the pods of this shim.
type service struct {
	pods *pod.Set
	life *lifetime.Server
	// removed is when a pod last left the set (UnixNano; 0: never): graceOver counts from it.
	// A shim that never had a pod exits without a grace.
	removed atomic.Int64
}

// removeGrace is how long a server whose last pod was shut down keeps answering (closing, off
// the group's path) before it exits: containerd's sandbox controller lets the shim exit by
// itself after ShutdownSandbox (it closes its connection and never sends the Task service's
// Shutdown), and it sends its own ShutdownSandbox after a caller's, which must be answered as
// the first, not find the shim gone.
const removeGrace = 2 * time.Second

var _ sandboxAPI.TTRPCSandboxService = (*service)(nil)

// newService serves pods, and ties them to the server's life: the server lives while a pod does,
// a pod's removal may end it, and its shutdown releases every pod (whatever ends the shim, no
// holder, mount, cgroup or netns pin outlives it).
func newService(pods *pod.Set, life *lifetime.Server) *service {
	s := &service{pods: pods, life: life}
	life.Serves(func() bool { return pods.Len() > 0 })
	life.Drains(s.graceOver)
	pods.OnRemove(func(had bool) {
		if had { // not for the Task service's Shutdown of a container's id
			s.removed.Store(time.Now().UnixNano())
		}
		life.ShutdownIfIdle()
	})
	life.OnStop(func(ctx context.Context) error {
		if err := pods.ReleaseAll(ctx); err != nil {
			log.G(ctx).WithError(err).Warn("shutdown: release the pods")
		}
		return nil
	})
	return s
}

// graceOver returns true once removeGrace has passed since a pod last left the set (at once if
// none ever did), false if ctx ends first.
func (s *service) graceOver(ctx context.Context) bool {
	last := s.removed.Load()
	if last == 0 {
		return true
	}
	left := time.Until(time.Unix(0, last).Add(removeGrace))
	if left <= 0 {
		return true
	}
	t := time.NewTimer(left)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// get returns the pod a request names: an empty id is InvalidArgument, an unknown one NotFound.
func (s *service) get(id string) (*pod.Pod, error) {
	if id == "" {
		return nil, fmt.Errorf("sandbox id is empty: %w", errdefs.ErrInvalidArgument)
	}
	return s.pods.Get(id)
}

// CreateSandbox sets a pod up (its files, its pin of the network namespace; nothing runs yet).
// An id that is not one path element is InvalidArgument; a second CreateSandbox of an id is
// AlreadyExists, whatever else the request says; then the request is checked.
func (s *service) CreateSandbox(ctx context.Context, r *sandboxAPI.CreateSandboxRequest) (*sandboxAPI.CreateSandboxResponse, error) {
	if err := pod.ValidID(r.SandboxID); err != nil {
		return nil, err
	}
	done, err := s.life.Reserve() // a shim on its way out takes no new pod
	if err != nil {
		return nil, fmt.Errorf("sandbox %s: %w", r.SandboxID, err)
	}
	defer done()
	release, err := s.pods.Reserve(r.SandboxID)
	if err != nil {
		return nil, err
	}
	cfg, err := pod.DecodeConfig(r.GetOptions().GetTypeUrl(), r.GetOptions().GetValue())
	if err != nil {
		release(nil)
		return nil, fmt.Errorf("sandbox %s: options: %w", r.SandboxID, err)
	}
	p, err := pod.New(pod.Options{ID: r.SandboxID, Bundle: r.BundlePath, NetNSPath: r.NetnsPath, Config: cfg})
	release(p) // nil on error: the id is free again
	if err != nil {
		return nil, err
	}
	log.G(ctx).WithField("sandbox_id", r.SandboxID).WithField("netns", r.NetnsPath).Debug("sandbox created")
	return &sandboxAPI.CreateSandboxResponse{}, nil
}

// StartSandbox starts the pod's namespace holder; before CreateSandbox it is FailedPrecondition.
func (s *service) StartSandbox(ctx context.Context, r *sandboxAPI.StartSandboxRequest) (*sandboxAPI.StartSandboxResponse, error) {
	p, err := s.get(r.SandboxID)
	if errdefs.IsNotFound(err) {
		return nil, fmt.Errorf("sandbox %s: start before create: %w", r.SandboxID, errdefs.ErrFailedPrecondition)
	}
	if err != nil {
		return nil, err
	}
	if err := p.Start(ctx); err != nil {
		return nil, err
	}
	st := p.Status()
	return &sandboxAPI.StartSandboxResponse{Pid: uint32(st.Pid), CreatedAt: timestamppb.New(st.CreatedAt)}, nil
}

// Platform is the shim's own: its pods run on this host.
func (s *service) Platform(_ context.Context, r *sandboxAPI.PlatformRequest) (*sandboxAPI.PlatformResponse, error) {
	if _, err := s.get(r.SandboxID); err != nil {
		return nil, err
	}
	p := &types.Platform{OS: "linux", Architecture: runtime.GOARCH}
	if runtime.GOARCH == "arm64" {
		p.Variant = "v8"
	}
	return &sandboxAPI.PlatformResponse{Platform: p}, nil
}

// StopSandbox ends the pod's holder, and with it the namespaces no member holds; idempotent.
func (s *service) StopSandbox(ctx context.Context, r *sandboxAPI.StopSandboxRequest) (*sandboxAPI.StopSandboxResponse, error) {
	p, err := s.get(r.SandboxID)
	if err != nil {
		return nil, err
	}
	if err := p.Stop(ctx); err != nil {
		return nil, err
	}
	return &sandboxAPI.StopSandboxResponse{}, nil
}

// WaitSandbox returns once the pod has stopped, with its holder's exit status.
func (s *service) WaitSandbox(ctx context.Context, r *sandboxAPI.WaitSandboxRequest) (*sandboxAPI.WaitSandboxResponse, error) {
	p, err := s.get(r.SandboxID)
	if err != nil {
		return nil, err
	}
	select {
	case <-p.Done():
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	st := p.Status()
	return &sandboxAPI.WaitSandboxResponse{ExitStatus: uint32(st.ExitCode), ExitedAt: timestamppb.New(st.ExitedAt)}, nil
}

// SandboxStatus reports the pod's holder pid, state and times; info carries pid, state and
// networkSandboxPath, and "info", the JSON the CRI plugin shows as the pod's verbose info.
func (s *service) SandboxStatus(_ context.Context, r *sandboxAPI.SandboxStatusRequest) (*sandboxAPI.SandboxStatusResponse, error) {
	p, err := s.get(r.SandboxID)
	if err != nil {
		return nil, err
	}
	st := p.Status()
	state := stateNotReady
	if st.State == pod.Ready {
		state = stateReady
	}
	resp := &sandboxAPI.SandboxStatusResponse{
		SandboxID: st.ID,
		Pid:       uint32(st.Pid),
		State:     state,
		CreatedAt: timestamppb.New(st.CreatedAt),
		Info: map[string]string{
			"pid":                strconv.Itoa(st.Pid),
			"state":              state,
			"networkSandboxPath": st.NetNSPath,
			"info":               verboseInfo(st),
		},
	}
	if !st.ExitedAt.IsZero() {
		resp.ExitedAt = timestamppb.New(st.ExitedAt)
	}
	return resp, nil
}

// verboseInfo is the pod's "info" in the JSON shape of the CRI plugin's sandbox info (the
// fields crictl inspectp shows: pid, processStatus, netNamespaceClosed).
func verboseInfo(st pod.Status) string {
	status := "running"
	if st.State != pod.Ready {
		status = "stopped"
	}
	return fmt.Sprintf(`{"pid":%d,"processStatus":%q,"netNamespaceClosed":%v,"sandboxer":"shim"}`,
		st.Pid, status, st.State == pod.Stopped && st.NetNSPath != "")
}

// PingSandbox answers for a pod this shim has.
func (s *service) PingSandbox(_ context.Context, r *sandboxAPI.PingRequest) (*sandboxAPI.PingResponse, error) {
	if _, err := s.get(r.SandboxID); err != nil {
		return nil, err
	}
	return &sandboxAPI.PingResponse{}, nil
}

// ShutdownSandbox releases everything of the pod (holder, mounts, files, cgroup, netns pin) and
// forgets it; the shim exits when no member container is left either. A second ShutdownSandbox
// of the pod is answered as the first. For a sandbox the shim never had (its CreateSandbox
// failed, and containerd cleans up) it is NotFound, and the shim exits if it serves nothing else.
func (s *service) ShutdownSandbox(ctx context.Context, r *sandboxAPI.ShutdownSandboxRequest) (*sandboxAPI.ShutdownSandboxResponse, error) {
	if r.SandboxID == "" {
		return nil, fmt.Errorf("sandbox id is empty: %w", errdefs.ErrInvalidArgument)
	}
	if err := s.pods.Shutdown(ctx, r.SandboxID); err != nil {
		return nil, err
	}
	return &sandboxAPI.ShutdownSandboxResponse{}, nil
}

// SandboxMetrics reports the statistics of the pod's cgroup, in the types Stats uses.
func (s *service) SandboxMetrics(_ context.Context, r *sandboxAPI.SandboxMetricsRequest) (*sandboxAPI.SandboxMetricsResponse, error) {
	p, err := s.get(r.SandboxID)
	if err != nil {
		return nil, err
	}
	st, err := p.Metrics()
	if err != nil {
		return nil, err
	}
	data, err := typeurl.MarshalAnyToProto(st)
	if err != nil {
		return nil, fmt.Errorf("sandbox %s: marshal metrics %T: %w", r.SandboxID, st, err)
	}
	return &sandboxAPI.SandboxMetricsResponse{Metrics: &types.Metric{
		Timestamp: timestamppb.New(time.Now()),
		ID:        r.SandboxID,
		Data:      data,
	}}, nil
}

// UpdateSandbox accepts an update of a pod this shim has: what it carries (the pod's resources
// and annotations) is applied by the CRI plugin to the containers and cgroups themselves.
func (s *service) UpdateSandbox(_ context.Context, r *sandboxAPI.UpdateSandboxRequest) (*sandboxAPI.UpdateSandboxResponse, error) {
	if _, err := s.get(r.SandboxID); err != nil {
		return nil, err
	}
	return &sandboxAPI.UpdateSandboxResponse{}, nil
}
