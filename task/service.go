//go:build linux

package task

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sync"

	eventstypes "github.com/containerd/containerd/api/events"
	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/pkg/protobuf"
	"github.com/containerd/containerd/v2/pkg/sys/reaper"
	"github.com/containerd/errdefs"
	runc "github.com/containerd/go-runc"
	"github.com/containerd/log"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/custom-shim/containerd-shim-custom-v1/bundle"
	shimio "github.com/custom-shim/containerd-shim-custom-v1/io"
	"github.com/custom-shim/containerd-shim-custom-v1/lifetime"
	"github.com/custom-shim/containerd-shim-custom-v1/process"
	"github.com/custom-shim/containerd-shim-custom-v1/tune"
)

var empty = &emptypb.Empty{}

// container is a process.Container with the ordering of its exits.
type container struct {
	*process.Container
	id   string
	gate execGate
	// sharedPID: no PID namespace of its own, so its processes outlive its init.
	sharedPID bool
	// deleting serializes the Deletes of the container's init, from the OCI runtime's delete to
	// the bookkeeping, so that a retry sees what the Delete it retries decided.
	deleting sync.Mutex
	// unanswered: deleted, but the caller's deadline had passed before the Delete could answer
	// (see Delete). Guarded by service.mu.
	unanswered bool
}

// members is what the Task service needs of the shim's pause-less pods (pod.Set, the Sandbox
// service's): the pod's files for a member's spec at Create, and a pod's release when
// containerd's Shutdown names it.
type members interface {
	PatchMember(spec *bundle.Spec) error
	Shutdown(ctx context.Context, id string) error
}

// service implements the Task API for every container of this shim.
type service struct {
	ctx    context.Context // the shim's context: carries the namespace; events use it
	life   *lifetime.Server
	events *eventQueue
	router *exitRouter
	exits  *exitQueue
	oom    *oomEvents // OOM hook: task/oom.go
	trim   *tune.Trimmer
	pods   members // nil in a shim built without the Sandbox service

	mu         sync.Mutex
	containers map[string]*container // nil value: id reserved by a Create in flight. Guarded by mu.
	// publishing counts the exit publications (handleExit's goroutines), which the shutdown
	// waits for before it flushes the events.
	publishing tracker
}

// newService starts the exit pump, the dispatcher and the event forwarder; they stop when the
// shim shuts down (its stop step, registered with life).
func newService(ctx context.Context, pub *remotePublisher, life *lifetime.Server, pods members) *service {
	s := &service{
		ctx:        ctx,
		life:       life,
		events:     newEventQueue(),
		router:     newExitRouter(),
		exits:      newExitQueue(),
		containers: map[string]*container{},
		pods:       pods,
	}
	life.Serves(s.busy)
	s.oom = newOOMEvents(ctx, s.events) // OOM hook: one watcher for all containers
	// Goroutines that hold an OS thread for good: os/signal's loop (pkg/shim's signal handling;
	// it waits in the runtime's signal queue as in a system call) and the OOM watcher's epoll_wait.
	blocked := 1
	if s.oom.w != nil {
		blocked++
	}
	s.trim = tune.NewTrimmer(blocked)
	// Delivering events is work too (exits publish them, and the forwarder can trail the last
	// request by seconds under load): the trim waits for the queue to be drained as well.
	s.events.idle = s.trim.After
	ec := reaper.Default.Subscribe()
	go s.pump(ec)
	go s.dispatch()
	go s.events.forward(ctx, pub)
	// Run by life once the requests in flight were answered.
	life.OnStop(func(ctx context.Context) error {
		// An exit being published (waiting, bounded, for its output to be read) queues its
		// event yet: the flush below is to deliver it.
		if !s.publishing.wait(ctx) {
			log.G(ctx).Warn("shutdown: exits still being published, exiting anyway")
		}
		reaper.Default.Unsubscribe(ec)
		s.trim.Stop()
		s.oom.close() // OOM hook
		s.events.closeAndFlush()
		return pub.Close()
	})
	return s
}

// pump moves exits from the reaper's channel to the unbounded queue; it never blocks the reaper.
func (s *service) pump(ec chan runc.Exit) {
	for e := range ec {
		s.exits.push(e)
	}
	s.exits.close()
}

// dispatch is the single goroutine that handles reaped exits, in order.
func (s *service) dispatch() {
	for {
		batch, ok := s.exits.pop()
		if !ok {
			return
		}
		for _, e := range batch {
			for _, rp := range s.router.Route(e) {
				s.handleExit(rp, e)
			}
		}
	}
}

// handleExit records a reaped exit and starts its publication, which runs off the dispatcher:
// each process's exit waits for its own output to be read (publishExit), and one container's
// unread output never holds up another's exit. The order that matters is kept: an init's exit is
// published after the exits of its execs (execGate), and each process's exit once (MarkReaped).
func (s *service) handleExit(rp routed, e runc.Exit) {
	if !rp.p.MarkReaped() {
		return // its exit was handled already
	}
	if rp.init {
		if rp.c.sharedPID {
			// Its other processes outlive it: end them, off the dispatcher, so that their
			// exits (which the gate waits for) come.
			go s.killRemaining(rp.c)
		}
		// Recorded now, so that no exec starts from here on; published once the execs' are.
		rp.c.gate.initExited(func() { s.publishing.Go(func() { s.publishExit(rp, e) }) })
		return
	}
	s.publishing.Go(func() {
		s.publishExit(rp, e)
		rp.c.gate.leave()
	})
}

// publishExit waits (bounded) for the process's output to be read, queues the TaskExit event,
// then records the exit: a Wait that returns has its event queued ahead of anything the client
// does next.
func (s *service) publishExit(rp routed, e runc.Exit) {
	if st := rp.p.State(); st == process.Stopped || st == process.Deleted {
		return
	}
	// The client deletes the process once it has its exit, dropping what its fifos still hold.
	rp.p.WaitOutputTaken()
	if rp.init {
		// OOM hook: an OOM kill not reported yet is published before the init's exit.
		s.oom.beforeInitExit(rp.c.id)
	}
	s.events.send(&eventstypes.TaskExit{
		ContainerID: rp.c.id,
		ID:          rp.p.ID(),
		Pid:         uint32(e.Pid),
		ExitStatus:  uint32(e.Status),
		ExitedAt:    protobuf.ToTimestamp(e.Timestamp),
	})
	rp.p.SetExited(e.Status, e.Timestamp)
}

func (s *service) killRemaining(c *container) {
	if err := c.Init.KillAll(s.ctx); err != nil && !errdefs.IsNotFound(err) {
		logger(s.ctx, c.id, "").WithError(err).Warn("kill processes left after init exit")
	}
}

// validID checks an id that ends up in file names: containerd's identifier rules.
func validID(kind, id string) error { return process.ValidID(kind, id) }

func (s *service) get(id string) (*container, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.containers[id]
	if c == nil {
		return nil, fmt.Errorf("container %s: %w", id, errdefs.ErrNotFound)
	}
	return c, nil
}

func (s *service) getProcess(id, execID string) (*container, process.Process, error) {
	c, err := s.get(id)
	if err != nil {
		return nil, nil, err
	}
	p, err := c.Process(execID)
	if err != nil {
		return nil, nil, err
	}
	return c, p, nil
}

// reserve claims a container id for a Create in flight: the server for new work (a shim that
// is shutting down takes no new container: Unavailable), then the id. release(c) puts c in the
// id's place (nil: gives the id back) and lets the server go.
func (s *service) reserve(id string) (release func(*container), err error) {
	done, err := s.life.Reserve()
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", id, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.containers[id]; ok {
		done()
		return nil, fmt.Errorf("container %s: %w", id, errdefs.ErrAlreadyExists)
	}
	s.containers[id] = nil
	return func(c *container) {
		s.mu.Lock()
		if c == nil {
			delete(s.containers, id)
		} else {
			s.containers[id] = c
		}
		s.mu.Unlock()
		done()
	}, nil
}

// Create creates a container: its init exists, stopped before the user's program, until Start.
func (s *service) Create(ctx context.Context, r *taskAPI.CreateTaskRequest) (*taskAPI.CreateTaskResponse, error) {
	if err := validID("container", r.ID); err != nil {
		return nil, err
	}
	spec, err := bundle.Read(r.Bundle) // read once: CreateInit writes it back with the changes
	if err == nil {
		err = process.CheckSpec(spec)
	}
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", r.ID, err)
	}
	if r.Checkpoint == "" && r.ParentCheckpoint != "" {
		return nil, fmt.Errorf("container %s: parent checkpoint without a checkpoint: %w", r.ID, errdefs.ErrInvalidArgument)
	}
	// A member of one of this shim's pause-less pods gets the pod's files (hosts, resolv.conf,
	// hostname, /dev/shm), which CRI leaves to the sandbox in that mode.
	if s.pods != nil {
		if err := s.pods.PatchMember(spec); err != nil {
			return nil, fmt.Errorf("container %s: %w", r.ID, err)
		}
	}
	opts, err := process.DecodeOptions(r.GetOptions().GetTypeUrl(), r.GetOptions().GetValue())
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", r.ID, err)
	}
	release, err := s.reserve(r.ID)
	if err != nil {
		return nil, err
	}
	if err := process.WriteOptions(r.Bundle, opts); err != nil {
		release(nil)
		return nil, fmt.Errorf("container %s: persist options: %w", r.ID, err)
	}
	ns, _ := namespaceOf(ctx, s.ctx)
	w := s.router.Open(nil)
	init, err := process.CreateInit(ctx, process.InitConfig{
		ID:        r.ID,
		Bundle:    r.Bundle,
		Spec:      spec,
		Namespace: ns,
		Rootfs:    mount.FromProto(r.Rootfs),
		Stdio:     shimio.Stdio{Stdin: r.Stdin, Stdout: r.Stdout, Stderr: r.Stderr, Terminal: r.Terminal},
		Options:   opts,
		// A checkpoint defers the OCI runtime's restore to Start.
		Checkpoint:       r.Checkpoint,
		ParentCheckpoint: r.ParentCheckpoint,
	})
	if err != nil {
		w.Close(nil)
		release(nil)
		return nil, err
	}
	// OOM hook: watch right after create, before start, so an OOM in the first instant is seen.
	// A container restored from a checkpoint has no process before Start: watched there.
	if init.Pid() != 0 {
		s.oom.watch(ctx, r.ID, init)
	}
	c := &container{Container: process.NewContainer(init), id: r.ID, sharedPID: init.SharedPIDNamespace()}
	release(c)
	s.events.send(&eventstypes.TaskCreate{
		ContainerID: r.ID,
		Bundle:      r.Bundle,
		Rootfs:      r.Rootfs,
		IO:          &eventstypes.TaskIO{Stdin: r.Stdin, Stdout: r.Stdout, Stderr: r.Stderr, Terminal: r.Terminal},
		Checkpoint:  r.Checkpoint,
		Pid:         uint32(init.Pid()),
	})
	rp := routed{c: c, p: init, init: true}
	if e, exited := w.Close(&rp); exited {
		s.handleExit(rp, e)
	}
	return &taskAPI.CreateTaskResponse{Pid: uint32(init.Pid())}, nil
}

// Start starts a created init or exec. Its start event is published before its exit event,
// even when the process exits before the runtime call returns.
func (s *service) Start(ctx context.Context, r *taskAPI.StartRequest) (*taskAPI.StartResponse, error) {
	c, p, err := s.getProcess(r.ID, r.ExecID)
	if err != nil {
		return nil, err
	}
	rp := routed{c: c, p: p, init: r.ExecID == ""}
	restored := rp.init && p.Pid() == 0 // created from a checkpoint: Start restores it
	var hold *routed
	if r.ExecID == "" {
		hold = &rp
	} else if err := c.gate.enter(r.ID, r.ExecID); err != nil {
		return nil, err
	}
	w := s.router.Open(hold)
	if err := p.Start(ctx); err != nil {
		e, exited := w.Close(&rp)
		if r.ExecID != "" {
			c.gate.leave()
		} else if exited {
			s.handleExit(rp, e)
		}
		return nil, err
	}
	if r.ExecID == "" {
		if restored {
			s.oom.watch(ctx, r.ID, c.Init) // OOM hook: its process exists only now
		}
		s.events.send(&eventstypes.TaskStart{ContainerID: r.ID, Pid: uint32(p.Pid())})
	} else {
		s.events.send(&eventstypes.TaskExecStarted{ContainerID: r.ID, ExecID: r.ExecID, Pid: uint32(p.Pid())})
	}
	if e, exited := w.Close(&rp); exited {
		s.handleExit(rp, e)
	}
	return &taskAPI.StartResponse{Pid: uint32(p.Pid())}, nil
}

// Delete deletes a stopped process; for an init, the whole container.
//
// A container's Delete whose caller gave up before the answer (ttrpc carries the caller's
// deadline into ctx) is done all the same, but the container is kept, deleted, until a retry
// takes the answer: containerd keeps its record of the task for that retry, and its client asks
// the task's State first and stops at a NotFound, so that containerd never runs its delete and
// never asks the shim to shut down (an orphaned shim; the reference shim has the same hole).
// Kept, the container's State is STOPPED with its exit, and the retry's Delete answers what the
// first would have.
func (s *service) Delete(ctx context.Context, r *taskAPI.DeleteRequest) (*taskAPI.DeleteResponse, error) {
	c, p, err := s.getProcess(r.ID, r.ExecID)
	if err != nil {
		return nil, err
	}
	if r.ExecID != "" {
		if err := p.Delete(ctx); err != nil {
			return nil, err
		}
		c.RemoveExec(r.ExecID)
		return deleteResponse(p), nil
	}
	c.deleting.Lock()
	defer c.deleting.Unlock()
	if s.answerRetry(c) {
		return deleteResponse(p), nil
	}
	if err := p.Delete(ctx); err != nil {
		return nil, err
	}
	s.mu.Lock()
	if ctx.Err() == nil {
		delete(s.containers, r.ID)
	} else {
		c.unanswered = true
	}
	s.mu.Unlock()
	s.oom.release(r.ID) // OOM hook
	resp := deleteResponse(p)
	s.events.send(&eventstypes.TaskDelete{ContainerID: r.ID, Pid: resp.Pid, ExitStatus: resp.ExitStatus, ExitedAt: resp.ExitedAt})
	return resp, nil
}

// answerRetry forgets c and reports true if its Delete was done but never answered.
func (s *service) answerRetry(c *container) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !c.unanswered || s.containers[c.id] != c {
		return false
	}
	delete(s.containers, c.id)
	return true
}

func deleteResponse(p process.Process) *taskAPI.DeleteResponse {
	status, at := p.Exit()
	return &taskAPI.DeleteResponse{Pid: uint32(p.Pid()), ExitStatus: uint32(status), ExitedAt: protobuf.ToTimestamp(at)}
}

// Exec adds an exec process to a container; Start runs it.
func (s *service) Exec(_ context.Context, r *taskAPI.ExecProcessRequest) (*emptypb.Empty, error) {
	c, err := s.get(r.ID)
	if err != nil {
		return nil, err
	}
	if err := validID("exec", r.ExecID); err != nil {
		return nil, err
	}
	var spec specs.Process
	if r.Spec == nil || json.Unmarshal(r.Spec.GetValue(), &spec) != nil {
		return nil, fmt.Errorf("exec %s in container %s: invalid process spec: %w", r.ExecID, r.ID, errdefs.ErrInvalidArgument)
	}
	if err := process.ValidateProcess(&spec); err != nil {
		return nil, fmt.Errorf("exec %s in container %s: %w", r.ExecID, r.ID, err)
	}
	// The request decides the terminal: containerd's client asks for one (cio.WithTerminal)
	// whatever the process spec says, and the OCI runtime goes by the spec.
	spec.Terminal = r.Terminal
	stdio := shimio.Stdio{Stdin: r.Stdin, Stdout: r.Stdout, Stderr: r.Stderr, Terminal: r.Terminal}
	if _, err := c.AddExec(r.ExecID, &spec, stdio); err != nil {
		return nil, err
	}
	s.events.send(&eventstypes.TaskExecAdded{ContainerID: r.ID, ExecID: r.ExecID})
	return empty, nil
}

// State reports a process's state.
func (s *service) State(_ context.Context, r *taskAPI.StateRequest) (*taskAPI.StateResponse, error) {
	c, p, err := s.getProcess(r.ID, r.ExecID)
	if err != nil {
		return nil, err
	}
	status, at := p.Exit()
	sio := p.Stdio()
	return &taskAPI.StateResponse{
		ID:         p.ID(),
		Bundle:     c.Init.Bundle(),
		Pid:        uint32(p.Pid()),
		Status:     apiStatus(p.State()),
		Stdin:      sio.Stdin,
		Stdout:     sio.Stdout,
		Stderr:     sio.Stderr,
		Terminal:   sio.Terminal,
		ExitStatus: uint32(status),
		ExitedAt:   protobuf.ToTimestamp(at),
		ExecID:     r.ExecID,
	}, nil
}

// Kill signals a process; with All, every process of the container.
func (s *service) Kill(ctx context.Context, r *taskAPI.KillRequest) (*emptypb.Empty, error) {
	_, p, err := s.getProcess(r.ID, r.ExecID)
	if err != nil {
		return nil, err
	}
	if r.Signal > maxSignal {
		return nil, fmt.Errorf("kill %s: invalid signal %d: %w", processName(r.ID, r.ExecID), r.Signal, errdefs.ErrInvalidArgument)
	}
	if err := p.Kill(ctx, r.Signal, r.All); err != nil {
		return nil, err
	}
	return empty, nil
}

// CloseIO closes the shim's hold on a process's stdin.
func (s *service) CloseIO(_ context.Context, r *taskAPI.CloseIORequest) (*emptypb.Empty, error) {
	_, p, err := s.getProcess(r.ID, r.ExecID)
	if err != nil {
		return nil, err
	}
	if r.Stdin {
		if err := p.CloseStdin(); err != nil {
			return nil, fmt.Errorf("container %s: close stdin: %w", r.ID, err)
		}
	}
	return empty, nil
}

// Wait blocks until the process has exited.
func (s *service) Wait(ctx context.Context, r *taskAPI.WaitRequest) (*taskAPI.WaitResponse, error) {
	_, p, err := s.getProcess(r.ID, r.ExecID)
	if err != nil {
		return nil, err
	}
	select {
	case <-p.Done():
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	status, at := p.Exit()
	return &taskAPI.WaitResponse{ExitStatus: uint32(status), ExitedAt: protobuf.ToTimestamp(at)}, nil
}

// Connect returns the shim's and the init's pids. Asked without a container id (the start
// action's probe), Version says whether the shim is shutting down (lifetime.ClosingVersion).
func (s *service) Connect(_ context.Context, r *taskAPI.ConnectRequest) (*taskAPI.ConnectResponse, error) {
	if r.ID == "" {
		resp := &taskAPI.ConnectResponse{ShimPid: uint32(os.Getpid())}
		if s.life.Closing() {
			resp.Version = lifetime.ClosingVersion
		}
		return resp, nil
	}
	var pid int
	if c, err := s.get(r.ID); err == nil {
		pid = c.Init.Pid()
	}
	return &taskAPI.ConnectResponse{ShimPid: uint32(os.Getpid()), TaskPid: uint32(pid)}, nil
}

// Shutdown stops the shim once it serves no container; until then it is a no-op.
//
// A container kept only for the retry of an unanswered Delete does not hold the shim up: a
// Shutdown means containerd took a Delete's answer (it may have read the late one after all) or
// has deleted the last other container of a group; if containerd still holds a record of the
// kept one, its handling of a shim that went away cleans that record up.
func (s *service) Shutdown(ctx context.Context, r *taskAPI.ShutdownRequest) (*emptypb.Empty, error) {
	// containerd's shim manager sends Shutdown with the id it started the shim for when it deletes
	// the shim (after its sandbox controller's ShutdownSandbox, or on its own): for a sandbox's
	// shim that is the pod's id, and the pod goes first (its Release leaves nothing behind).
	if id := r.GetID(); s.pods != nil && id != "" {
		if err := s.pods.Shutdown(ctx, id); err != nil && !errdefs.IsNotFound(err) {
			log.G(ctx).WithError(err).WithField("sandbox_id", id).Warn("shutdown: release the pod")
		}
	}
	s.life.ShutdownIfIdle()
	return empty, nil
}

// busy reports whether the service still serves a container (one reserved by a Create in flight
// included); one kept only for the retry of an unanswered Delete does not count (Shutdown).
func (s *service) busy() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.containers {
		if c == nil || !c.unanswered {
			return true
		}
	}
	return false
}

func apiStatus(st process.State) taskStatus {
	switch st {
	case process.Created:
		return statusCreated
	case process.Running:
		return statusRunning
	case process.Pausing:
		return statusPausing
	case process.Paused:
		return statusPaused
	case process.Stopped, process.Deleted:
		return statusStopped
	}
	return statusUnknown
}

// maxSignal is the highest signal number Linux has (SIGRTMAX); 0 only checks the process exists.
const maxSignal = 64

// processName names a process in errors: the container for its init, else the exec in it.
func processName(id, execID string) string {
	if execID == "" {
		return "container " + id
	}
	return "exec " + execID + " in container " + id
}

// logger returns a logger with the ids of a request.
func logger(ctx context.Context, id, execID string) *log.Entry {
	l := log.G(ctx).WithField("container_id", id)
	if execID != "" {
		l = l.WithField("exec_id", execID)
	}
	return l
}
