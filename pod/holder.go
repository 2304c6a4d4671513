//go:build linux

package pod

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"

	"github.com/containerd/containerd/v2/pkg/sys/reaper"
	"github.com/containerd/errdefs"
	runc "github.com/containerd/go-runc"
	"golang.org/x/sys/unix"
)

// holderComm is the name the holder gives itself (at most 15 bytes: TASK_COMM_LEN - 1), as its
// code names itself (holder/holder.c).
const holderComm = "pod-holder"

//go:generate sh holder/gen.sh

// image is the holder executable of this shim process: a sealed memfd written once, on the first
// Start, and kept open (one page of shmem) for the shim's life.
var image struct {
	mu sync.Mutex
	f  *os.File // guarded by mu; nil until the first successful holderExecutable
}

// holderExecutable returns the sealed memfd that holds the holder's image, creating it on first use.
func holderExecutable() (*os.File, error) {
	image.mu.Lock()
	defer image.mu.Unlock()
	if image.f != nil {
		return image.f, nil
	}
	b, err := holderImage()
	if err != nil {
		return nil, err
	}
	f, err := sealedMemfd(holderComm, b)
	if err != nil {
		return nil, err
	}
	image.f = f
	return f, nil
}

// sealedMemfd returns a close-on-exec memfd holding b that nobody can change any more (its size,
// its bytes, its seals; and, where the kernel has F_SEAL_EXEC (6.3), its mode). It asks for
// MFD_EXEC, which kernels since 6.3 want for an executable memfd (without it they log a warning,
// and vm.memfd_noexec=1 makes the memfd non-executable); older kernels refuse the unknown flag
// with EINVAL, and then the memfd is executable anyway.
func sealedMemfd(name string, b []byte) (*os.File, error) {
	const flags = unix.MFD_CLOEXEC | unix.MFD_ALLOW_SEALING
	fd, err := unix.MemfdCreate(name, flags|unix.MFD_EXEC)
	if errors.Is(err, unix.EINVAL) {
		fd, err = unix.MemfdCreate(name, flags)
	}
	if errors.Is(err, unix.EACCES) {
		return nil, fmt.Errorf("memfd_create(MFD_EXEC): %w (vm.memfd_noexec=2 forbids executable memfds)", err)
	}
	if err != nil {
		return nil, fmt.Errorf("memfd_create: %w", err)
	}
	f := os.NewFile(uintptr(fd), "memfd:"+name)
	if _, err := f.Write(b); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("write holder image: %w", err)
	}
	_, _ = unix.FcntlInt(f.Fd(), unix.F_ADD_SEALS, unix.F_SEAL_EXEC) // EINVAL before 6.3: no such seal
	seals := unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE | unix.F_SEAL_SEAL
	if _, err := unix.FcntlInt(f.Fd(), unix.F_ADD_SEALS, seals); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("seal holder image: %w", err)
	}
	return f, nil
}

// nsSpec says which namespaces the holder gets and what is set up in them (holder/holder.c
// does it, in the order its setup says).
type nsSpec struct {
	id string // the sandbox's, in the holder's argv
	// unshare holds the CLONE_NEW* flags of the namespaces of the pod's own (IPC, UTS, PID),
	// made inside the user namespace if the pod has one.
	unshare  uintptr
	hostname string   // set in the new UTS namespace if not ""
	netns    *os.File // the network namespace to enter first, nil for the shim's own (the host's)
	userns   *os.File // the user namespace to enter then (the owner of netns), or nil
	// newUserns, without userns: a user namespace made for the holder with these maps (a pod
	// with a user namespace and the host's network: no namespace of CRI's owns it).
	newUserns  bool
	uids, gids []IDMap
	sysctls    []sysctl
}

// config renders s as the holder reads it on fd 6 (holder/holder.c: read_config).
func (s *nsSpec) config() []byte {
	var b []byte
	if s.netns != nil {
		b = append(b, "netns\n"...)
	}
	if s.userns != nil {
		b = append(b, "userns\n"...)
	}
	b = fmt.Appendf(b, "unshare %d\n", s.unshare)
	if s.hostname != "" {
		b = fmt.Appendf(b, "hostname %s\n", s.hostname)
	}
	for _, sc := range s.sysctls {
		b = fmt.Appendf(b, "sysctl %s %s\n", strings.TrimPrefix(sc.path, "/proc/sys/"), sc.value)
	}
	return b
}

// holder is a running holder process.
type holder struct {
	pid int            // in the shim's PID namespace
	ec  chan runc.Exit // the reaper's subscription; wait consumes it
	// stage is the process the shim started: the holder itself, or, with a PID namespace of the
	// pod's own, its parent, which forks the holder (a child of the shim's too: CLONE_PARENT)
	// and exits. Its exit is awaited (and its handle released) by wait.
	stage *exec.Cmd
	// hold is the pipe's write end, the holder's life line: closing it (release) makes the
	// holder exit. Only the shim has it (close-on-exec). Owned by the Pod's opMu.
	hold *os.File

	// procMu serialises kill with the release of proc after the exit (os.Process.Release writes
	// its fields, which Signal reads).
	procMu   sync.Mutex
	proc     *os.Process // the holder's handle (a pidfd); guarded by procMu
	released bool        // guarded by procMu
}

// startHolder starts a holder in the namespaces s describes and returns once it has confined
// itself (holder/holder.c: an empty read-only root, no capability, uid and gid 65535, not
// dumpable, no_new_privs, its seccomp filter) and said so on its report pipe; a holder that
// fails a step is reaped and the step and errno returned. The processes are started through
// pkg/shim's reaper, which reaps every child of the shim.
func startHolder(s nsSpec) (*holder, error) {
	exe, err := holderExecutable()
	if err != nil {
		return nil, err
	}
	var files pipes
	defer files.close()
	// A blocking pipe from the start (pipe2 without O_NONBLOCK): a non-blocking read end would
	// have the holder read EAGAIN and exit. Only the holder reads it.
	lifeR, lifeW, err := files.pipe2()
	if err != nil {
		return nil, err
	}
	// The report pipe: the read end is pollable, so the read can time out.
	reportR, reportW, err := files.osPipe()
	if err != nil {
		return nil, err
	}
	cfgR, cfgW, err := files.osPipe()
	if err != nil {
		return nil, err
	}
	cfg := s.config()
	if len(cfg) >= holderConfigMax {
		return nil, fmt.Errorf("holder configuration of %d bytes: at most %d: %w", len(cfg), holderConfigMax-1, errdefs.ErrInvalidArgument)
	}
	if _, err := cfgW.Write(cfg); err != nil { // a pipe holds 64 KiB
		return nil, fmt.Errorf("write holder configuration: %w", err)
	}
	_ = cfgW.Close()
	cmd := holderCmd(&s, lifeR, exe, reportW, cfgR)
	ec, err := reaper.Default.Start(cmd)
	if err != nil {
		return nil, fmt.Errorf("start holder: %w", err)
	}
	files.keep(lifeW)
	for _, f := range []*os.File{lifeR, reportW, cfgR} { // the child's ends
		_ = f.Close()
		files.keep(f)
	}
	h := &holder{pid: cmd.Process.Pid, ec: ec, stage: cmd, hold: lifeW, proc: cmd.Process}
	pid, err := readReport(reportR, s.unshare&unix.CLONE_NEWPID != 0)
	if err != nil {
		return nil, fmt.Errorf("holder pid %d: %w (exit status %d)", h.pid, err, h.abort())
	}
	if pid != 0 && pid != h.pid {
		// The holder is the stage's child: a handle of its own (os.FindProcess opens a pidfd).
		// Between its report and this it has not exited: it waits for its life line.
		proc, err := os.FindProcess(pid)
		if err != nil {
			return nil, fmt.Errorf("holder pid %d: %w (exit status %d)", pid, err, h.abort())
		}
		h.pid, h.proc = pid, proc
	}
	return h, nil
}

// holderConfigMax is the size of the holder's configuration buffer (holder.c: CONFIG_MAX).
const holderConfigMax = 4096

// holderCmd is the command that runs the holder: the memfd exe becomes the child's fd 4 and is
// executed as /proc/self/fd/4 (os/exec dup2s ExtraFiles onto fds 3, 4, ... in the child before
// the exec, so the memfd's number in the shim could be overwritten; fd 4 cannot), the life
// line's read end its fd 3, the report pipe's write end its fd 5, the configuration its fd 6,
// the network and user namespaces (if any) its fds 7 and 8. No environment (it would be copied
// onto the holder's stack), a session of its own. The holder closes every fd but 3 and 5 itself,
// and leaves the cwd and root of the shim behind with the host's mounts.
func holderCmd(s *nsSpec, life, exe, report, cfg *os.File) *exec.Cmd {
	attr := &syscall.SysProcAttr{Setsid: true}
	if s.newUserns {
		// A new user namespace with the pod's maps, and the child as its root (uid and gid 0
		// there: the shim's root is not mapped in it) so that it keeps its capabilities there
		// across the exec.
		attr.Cloneflags = unix.CLONE_NEWUSER
		attr.UidMappings, attr.GidMappings = idMaps(s.uids), idMaps(s.gids)
		attr.GidMappingsEnableSetgroups = true
		attr.Credential = &syscall.Credential{Uid: 0, Gid: 0, NoSetGroups: true}
	}
	return &exec.Cmd{
		Path:        "/proc/self/fd/4",
		Args:        []string{holderComm, s.id},
		Env:         []string{},
		Dir:         "/",
		ExtraFiles:  []*os.File{life, exe, report, cfg, s.netns, s.userns},
		SysProcAttr: attr,
	}
}

func idMaps(m []IDMap) []syscall.SysProcIDMap {
	out := make([]syscall.SysProcIDMap, len(m))
	for i, e := range m {
		out[i] = syscall.SysProcIDMap{ContainerID: int(e.ContainerID), HostID: int(e.HostID), Size: int(e.Length)}
	}
	return out
}

// wait blocks until the reaper reports the holder's exit and returns its status (128+signal if
// it was killed), then lets go of its handles; the stage's exit (when the holder is its child)
// is consumed on the way. Call it once.
func (h *holder) wait() int {
	status := -1 // the reaper closed the subscription: nothing will report the exit
	for e := range h.ec {
		if e.Pid == h.stage.Process.Pid && h.stage.Process != h.proc {
			_ = h.stage.Wait() // reaped already: releases its handle
		}
		if e.Pid == h.pid {
			status = e.Status
			break
		}
	}
	reaper.Default.Unsubscribe(h.ec)
	h.procMu.Lock()
	h.released = true
	if h.proc == h.stage.Process {
		_ = h.stage.Wait()
	} else {
		_ = h.proc.Release()
	}
	h.procMu.Unlock()
	return status
}

// abort ends a holder no watcher waits for (one that failed to start): it closes the life line,
// kills it and reaps it, and returns its exit status.
func (h *holder) abort() int {
	h.release()
	h.kill()
	return h.wait()
}

// release closes the holder's life line: it exits once it reads EOF. Idempotent; callers
// serialise it (the Pod's opMu).
func (h *holder) release() {
	if h.hold != nil {
		_ = h.hold.Close()
		h.hold = nil
	}
}

// kill sends SIGKILL through the process handle's pidfd, which never signals another process
// that took the pid; a no-op once the holder's exit was reported.
func (h *holder) kill() {
	h.procMu.Lock()
	defer h.procMu.Unlock()
	if !h.released {
		_ = h.proc.Signal(unix.SIGKILL)
	}
}
