//go:build linux

package pod

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
)

// Bounds on Stop's wait for the holder (it exits within microseconds of reading EOF; these
// matter only for a holder stopped with SIGSTOP, or stuck in the kernel).
const (
	holderExitTimeout = 2 * time.Second // after its pipe is closed, before SIGKILL
	holderKillTimeout = 5 * time.Second // after SIGKILL
)

// Pod is a pod's namespaces (held by its holder process) and shared files. Its methods are safe
// for concurrent use.
type Pod struct {
	id, bundle, netns string
	cfg               Config
	created           time.Time
	done              chan struct{} // closed by setStopped, once

	// opMu serialises Start, Stop and Release (and guards holder.hold and netnsFile); the exit
	// path (watch) never takes it. Lock order: opMu, then mu.
	opMu sync.Mutex
	// netnsFile pins the pod's network namespace (Options.NetNSPath) from New until Stop: the
	// holder enters it through this fd, so the caller may remove the path's bind mount first.
	// usernsFile, for a pod with a user namespace, is the one that owns it (CRI makes a
	// user-namespaced pod's network namespace inside the pod's user namespace).
	netnsFile, usernsFile *os.File

	mu       sync.Mutex // guards the fields below
	state    State
	holder   *holder // set by Start; nil for a pod never started
	exitedAt time.Time
	exitCode int

	stats podStats // the pod's cgroup, loaded by the first Metrics
}

// New validates opts (InvalidArgument: an empty or malformed id, a relative or missing bundle,
// a user namespace mode other than NODE and POD, or POD without mappings that map the holder's
// id, PID mode TARGET, sysctls that are not namespaced, net.* sysctls with host network, IPC
// sysctls with host IPC), writes the pod's files into the bundle (hostname: Config.Hostname or
// the host's, and a newline; hosts: a copy of the host's /etc/hosts; resolv.conf: from
// Config.DNS as podsandbox writes it, else a copy of the host's /etc/resolv.conf), and unless IPC
// is ModeNode mounts a tmpfs at <bundle>/shm (nosuid, nodev, noexec, mode=1777, size=64m, as
// podsandbox does). The pod is Created. On error nothing of it is left.
func New(opts Options) (*Pod, error) {
	cfg := Config{}
	if opts.Config != nil {
		cfg = *opts.Config
	}
	if err := validate(&opts, &cfg); err != nil {
		return nil, err
	}
	p := &Pod{
		id: opts.ID, bundle: opts.Bundle, netns: opts.NetNSPath, cfg: cfg,
		created: time.Now(), done: make(chan struct{}),
	}
	if err := p.pinNamespaces(); err != nil {
		p.unpinNetns()
		return nil, fmt.Errorf("sandbox %s: %w", p.id, err)
	}
	if err := p.setUp(); err != nil {
		p.unpinNetns()
		_ = unmountShm(p.bundle)
		_ = removeFiles(p.bundle)
		return nil, fmt.Errorf("sandbox %s: %w", p.id, err)
	}
	return p, nil
}

// setUp writes the pod's files and mounts its shm.
func (p *Pod) setUp() error {
	if err := writeFiles(p.bundle, &p.cfg); err != nil {
		return err
	}
	if p.cfg.IPC == ModeNode {
		return nil
	}
	return mountShm(p.bundle)
}

// Start starts the holder in the pod's namespaces: new IPC (unless IPC is ModeNode) and UTS
// (unless Network is ModeNode: host network means the host's UTS) namespaces with the pod's
// hostname, the network namespace of Options.NetNSPath, the pod's sysctls applied there, and
// with PID ModePod a new PID namespace whose PID 1 the holder is. The pod must be Created
// (else FailedPrecondition); it is Ready once Start returns nil, and stays Created on error.
func (p *Pod) Start(ctx context.Context) error {
	p.opMu.Lock()
	defer p.opMu.Unlock()
	if st := p.Status().State; st != Created {
		return fmt.Errorf("sandbox %s: start in state %s: %w", p.id, st, errdefs.ErrFailedPrecondition)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("sandbox %s: start: %w", p.id, err)
	}
	sysctls, err := podSysctls(&p.cfg, p.netns) // checked by New
	if err != nil {
		return fmt.Errorf("sandbox %s: %w", p.id, err)
	}
	h, err := startHolder(p.nsSpec(sysctls))
	var se *sysctlError
	if errors.As(err, &se) && se.index < len(sysctls) {
		err = sysctls[se.index].failed(se.errno)
	}
	if err != nil {
		return fmt.Errorf("sandbox %s: start holder: %w", p.id, err)
	}
	if _, err := placeHolder(p.bundle, p.cfg.CgroupParent, p.id, h.pid); err != nil {
		h.abort()
		return fmt.Errorf("sandbox %s: start holder: %w", p.id, err)
	}
	p.mu.Lock()
	p.holder, p.state = h, Ready
	p.mu.Unlock()
	go p.watch(h)
	return nil
}

// nsSpec is what the holder makes of the pod's namespaces: IPC of its own unless IPC is
// ModeNode, UTS unless Network is ModeNode (host network means the host's UTS), PID with PID
// ModePod; the pinned network namespace; with a user namespace, the one owning that network
// namespace, or, with the host's network, a new one with the pod's maps.
func (p *Pod) nsSpec(sysctls []sysctl) nsSpec {
	s := nsSpec{id: p.id, hostname: p.cfg.Hostname, netns: p.netnsFile, userns: p.usernsFile, sysctls: sysctls}
	if p.cfg.IPC != ModeNode {
		s.unshare |= unix.CLONE_NEWIPC
	}
	if p.cfg.Network != ModeNode {
		s.unshare |= unix.CLONE_NEWUTS
	} else {
		s.hostname = ""
	}
	if p.cfg.PID == ModePod {
		s.unshare |= unix.CLONE_NEWPID
	}
	if p.cfg.usernsPod() && p.usernsFile == nil {
		s.newUserns, s.uids, s.gids = true, p.cfg.UIDs, p.cfg.GIDs
	}
	return s
}

// watch records the holder's exit: the pod is Stopped from then on. It is the pod's only
// goroutine; it ends with the holder.
func (p *Pod) watch(h *holder) {
	p.setStopped(h.wait())
}

// setStopped makes the pod Stopped with exit status code, unless it is already.
func (p *Pod) setStopped(code int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.state == Stopped {
		return
	}
	p.state, p.exitCode, p.exitedAt = Stopped, code, time.Now()
	close(p.done)
}

// Stop ends the holder (it exits when its pipe closes; SIGKILL after holderExitTimeout) and
// waits for its exit, bounded by ctx and holderKillTimeout, then removes its cgroup and
// unmounts <bundle>/shm. The
// namespaces go with the holder unless a member container still holds them. Idempotent; a pod
// never started becomes Stopped too. Done is closed once Stop returns nil.
func (p *Pod) Stop(ctx context.Context) error {
	p.opMu.Lock()
	defer p.opMu.Unlock()
	return p.stop(ctx)
}

// stop is Stop; the caller holds opMu.
func (p *Pod) stop(ctx context.Context) error {
	p.mu.Lock()
	h := p.holder
	p.mu.Unlock()
	if h == nil {
		p.setStopped(0)
	} else if err := p.endHolder(ctx, h); err != nil {
		return fmt.Errorf("sandbox %s: stop: %w", p.id, err)
	}
	p.unpinNetns()
	if err := removeCgroupsFile(p.bundle); err != nil {
		return fmt.Errorf("sandbox %s: stop: %w", p.id, err)
	}
	if err := unmountShm(p.bundle); err != nil {
		return fmt.Errorf("sandbox %s: stop: %w", p.id, err)
	}
	return nil
}

// pinNamespaces opens the pod's network namespace and, for a pod with a user namespace and a
// network of its own, the user namespace that owns it: it must not be the shim's (a network
// namespace of the host's user namespace cannot be the pod's: InvalidArgument).
func (p *Pod) pinNamespaces() error {
	if p.netns == "" {
		return nil
	}
	f, err := openNetns(p.netns)
	if err != nil {
		return err
	}
	p.netnsFile = f
	if !p.cfg.usernsPod() {
		return nil
	}
	u, err := ownerUserns(f)
	if err != nil {
		return err
	}
	if u == nil {
		return fmt.Errorf("network namespace %s is owned by the host's user namespace, not the pod's: %w", p.netns, errdefs.ErrInvalidArgument)
	}
	p.usernsFile = u
	return nil
}

// unpinNetns closes the pod's pins of its network and user namespaces; the caller holds opMu
// (or owns p).
func (p *Pod) unpinNetns() {
	for _, f := range []**os.File{&p.netnsFile, &p.usernsFile} {
		if *f != nil {
			_ = (*f).Close()
			*f = nil
		}
	}
}

// endHolder closes h's life line and waits for the pod to be Stopped, with SIGKILL if the
// holder does not exit in holderExitTimeout.
func (p *Pod) endHolder(ctx context.Context, h *holder) error {
	h.release()
	if err := p.waitStopped(ctx, holderExitTimeout); err == nil || ctx.Err() != nil {
		return err
	}
	h.kill()
	if err := p.waitStopped(ctx, holderKillTimeout); err != nil {
		return fmt.Errorf("holder pid %d: %w", h.pid, err)
	}
	return nil
}

// errHolderStuck: the holder did not exit in time.
var errHolderStuck = errors.New("did not exit")

// waitStopped waits until done is closed, ctx ends (its error) or timeout passes (errHolderStuck).
func (p *Pod) waitStopped(ctx context.Context, timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return fmt.Errorf("%w within %v", errHolderStuck, timeout)
	}
}

// Release stops the pod and removes its files: nothing of it is left (no mount, no process, no
// namespace pin). Idempotent.
func (p *Pod) Release(ctx context.Context) error {
	p.opMu.Lock()
	defer p.opMu.Unlock()
	if err := p.stop(ctx); err != nil {
		return err
	}
	if err := removeFiles(p.bundle); err != nil {
		return fmt.Errorf("sandbox %s: release: %w", p.id, err)
	}
	return nil
}

// Done is closed once the pod is Stopped: its holder exited, or Stop ended a pod never started.
func (p *Pod) Done() <-chan struct{} { return p.done }

// Status reports the pod's state, holder pid and times.
func (p *Pod) Status() Status {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := Status{
		ID: p.id, State: p.state, CreatedAt: p.created, NetNSPath: p.netns,
		ExitedAt: p.exitedAt, ExitCode: p.exitCode,
	}
	if p.holder != nil {
		st.Pid = p.holder.pid
	}
	return st
}

// String names a state for messages.
func (s State) String() string {
	switch s {
	case Created:
		return "created"
	case Ready:
		return "ready"
	case Stopped:
		return "stopped"
	}
	return fmt.Sprintf("State(%d)", int(s))
}
