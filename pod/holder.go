//go:build linux

package pod

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/pkg/sys/reaper"
	"github.com/containerd/errdefs"
	runc "github.com/containerd/go-runc"
	"golang.org/x/sys/unix"
)

// holderComm is the name the holder gives itself (at most 15 bytes: TASK_COMM_LEN - 1), as its
// code names itself (holder/*.s).
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

// nsSpec says which namespaces the holder gets and what is set up in them.
type nsSpec struct {
	id             string   // the sandbox's, in the holder's argv
	newIPC, newUTS bool     // unshare a new IPC / UTS namespace
	newPID         bool     // start the holder as PID 1 of a new PID namespace
	hostname       string   // set in the new UTS namespace if not ""
	netns          *os.File // the network namespace to enter, nil for the shim's own (the host's)
	sysctls        []sysctl
}

// enter moves the calling thread into the pod's IPC, UTS and network namespaces and applies the
// pod's sysctls there. The thread must be locked to its goroutine and never unlocked: its
// namespaces are no longer the shim's, so it must end with the goroutine (runtime.LockOSThread:
// a goroutine that exits locked takes its thread with it). Each of these namespaces is a
// property of the thread (unshare(2), setns(2) act on the caller only), and so is what a
// namespaced sysctl under /proc/sys resolves to: the kernel looks up /proc/sys/net and the IPC
// and UTS entries in the namespaces of the task that opens them (root tests check each).
func (s *nsSpec) enter() error {
	var flags int
	if s.newIPC {
		flags |= unix.CLONE_NEWIPC
	}
	if s.newUTS {
		flags |= unix.CLONE_NEWUTS
	}
	if flags != 0 {
		if err := unix.Unshare(flags); err != nil {
			return fmt.Errorf("unshare: %w", err)
		}
	}
	if s.newUTS && s.hostname != "" {
		if err := unix.Sethostname([]byte(s.hostname)); err != nil {
			return fmt.Errorf("sethostname %q: %w", s.hostname, err)
		}
	}
	if s.netns != nil {
		if err := unix.Setns(int(s.netns.Fd()), unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("setns %s: %w", s.netns.Name(), err)
		}
	}
	for _, sc := range s.sysctls {
		if err := sc.apply(); err != nil {
			return err
		}
	}
	return nil
}

// openNetns opens the network namespace at path and checks it is one: a file of nsfs (fstatfs)
// of type CLONE_NEWNET (the NS_GET_NSTYPE ioctl; kernels before 4.11 lack it, and any nsfs
// file is taken). Anything else is InvalidArgument naming path. The open file pins the
// namespace: it lives on after its bind mount is gone.
func openNetns(path string) (*os.File, error) {
	bad := func(why string, err error) error {
		if err != nil {
			why += ": " + err.Error()
		}
		return fmt.Errorf("network namespace %s: %s: %w", path, why, errdefs.ErrInvalidArgument)
	}
	if !filepath.IsAbs(path) {
		return nil, bad("not an absolute path", nil)
	}
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, bad("cannot open it", err)
	}
	var st unix.Statfs_t
	if err := unix.Fstatfs(int(f.Fd()), &st); err != nil || st.Type != unix.NSFS_MAGIC {
		_ = f.Close()
		return nil, bad("not a namespace", err)
	}
	if t, err := unix.IoctlRetInt(int(f.Fd()), unix.NS_GET_NSTYPE); err == nil && t != unix.CLONE_NEWNET {
		_ = f.Close()
		return nil, bad("not a network namespace", nil)
	}
	return f, nil
}

// holder is a running holder process.
type holder struct {
	pid int            // in the shim's PID namespace
	cmd *exec.Cmd      // its Process is used under procMu only
	ec  chan runc.Exit // the reaper's subscription; wait consumes it
	// hold is the pipe's write end, the holder's life line: closing it (release) makes the
	// holder exit. Only the shim has it (close-on-exec). Owned by the Pod's opMu.
	hold *os.File

	// procMu serialises kill with the release of cmd.Process after the exit (os.Process.Release
	// writes its Pid field, which Signal reads).
	procMu   sync.Mutex
	released bool // guarded by procMu
}

// holderReportTimeout bounds the wait for the holder's report (it confines itself in a few
// dozen system calls; this matters only for a holder stopped or stuck in the kernel).
const holderReportTimeout = 5 * time.Second

// startHolder starts a holder in the namespaces s describes: from a goroutine locked to a thread
// of its own, which enters the namespaces and forks the holder (which inherits the thread's
// namespaces; CLONE_NEWNS gives it a mount namespace of its own, CLONE_NEWPID makes it PID 1 of
// a new PID namespace), then ends with its thread. The holder is started through pkg/shim's
// reaper, which reaps every child of the shim. startHolder returns once the holder has confined
// itself (holder/amd64.s: an empty read-only root, no capability, uid and gid 65535, not
// dumpable, no_new_privs, its seccomp filter) and said so on its report pipe; a holder that
// fails a step is reaped and its step and errno returned.
func startHolder(s nsSpec) (*holder, error) {
	exe, err := holderExecutable()
	if err != nil {
		return nil, err
	}
	// A blocking pipe from the start (pipe2 without O_NONBLOCK): a non-blocking read end would
	// have the holder read EAGAIN and exit. (os.Pipe's ends are non-blocking, and only os/exec's
	// call of File.Fd happens to switch the read end back; this does not rely on it.)
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return nil, fmt.Errorf("pipe: %w", err)
	}
	r, w := os.NewFile(uintptr(p[0]), "holder-r"), os.NewFile(uintptr(p[1]), "holder-w")
	defer func() { _ = r.Close() }()
	// The report pipe: the holder writes two bytes to its end (fd 5) once it is confined, or
	// when a step fails; the read end is pollable, so the read can time out.
	reportR, reportW, err := os.Pipe()
	if err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("pipe: %w", err)
	}
	defer func() { _ = reportR.Close() }()
	cmd := holderCmd(s, r, exe, reportW)

	type started struct {
		ec  chan runc.Exit
		err error
	}
	res := make(chan started, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: see nsSpec.enter
		if err := s.enter(); err != nil {
			res <- started{err: err}
			return
		}
		ec, err := reaper.Default.Start(cmd)
		res <- started{ec, err}
	}()
	out := <-res
	_ = reportW.Close()
	if out.err != nil {
		_ = w.Close()
		return nil, out.err
	}
	h := &holder{pid: cmd.Process.Pid, cmd: cmd, ec: out.ec, hold: w}
	if err := readReport(reportR); err != nil {
		return nil, fmt.Errorf("holder pid %d: %w (exit status %d)", h.pid, err, h.abort())
	}
	return h, nil
}

// holderSteps names the holder's steps by their number in its report (holder/common.inc).
var holderSteps = []string{1: "ignore SIGCHLD", "set its name", "close its stdio and image", "make its mounts private",
	"mount its root tmpfs", "chdir into it", "pivot_root", "unmount the old root", "chdir /",
	"drop the bounding set", "clear the ambient set", "setgroups", "setresgid", "setresuid", "capset",
	"make itself not dumpable", "set no_new_privs", "install its seccomp filter"}

// readReport reads the holder's report: {0, 0} once it is confined, {step, errno} when a step
// failed; EOF before two bytes means it died (its exit status tells how).
func readReport(f *os.File) error {
	_ = f.SetReadDeadline(time.Now().Add(holderReportTimeout))
	var b [2]byte
	if _, err := io.ReadFull(f, b[:]); err != nil {
		return fmt.Errorf("no report from the holder: %w", err)
	}
	if b[0] == 0 {
		return nil
	}
	step := fmt.Sprintf("step %d", b[0])
	if int(b[0]) < len(holderSteps) {
		step = holderSteps[b[0]]
	}
	return fmt.Errorf("holder failed to %s: %w", step, unix.Errno(b[1]))
}

// holderCmd is the command that runs the holder: the memfd exe becomes the child's fd 4 and is
// executed as /proc/self/fd/4 (os/exec dup2s ExtraFiles onto fds 3, 4, ... in the child before
// the exec, so the memfd's number in the shim could be overwritten; fd 4 cannot), the life
// line's read end r its fd 3, the report pipe's write end report its fd 5. No environment (it
// would be copied onto the holder's stack), a session of its own. The holder closes fds 0-2 and
// 4 itself, and leaves the cwd and root of the shim behind with the host's mounts.
func holderCmd(s nsSpec, r, exe, report *os.File) *exec.Cmd {
	attr := &syscall.SysProcAttr{Setsid: true, Cloneflags: unix.CLONE_NEWNS}
	if s.newPID {
		attr.Cloneflags |= unix.CLONE_NEWPID
	}
	return &exec.Cmd{
		Path:        "/proc/self/fd/4",
		Args:        []string{holderComm, s.id},
		Env:         []string{},
		Dir:         "/",
		ExtraFiles:  []*os.File{r, exe, report},
		SysProcAttr: attr,
	}
}

// wait blocks until the reaper reports the holder's exit and returns its status (128+signal if
// it was killed), then lets go of the process handle (and its pidfd). Call it once.
func (h *holder) wait() int {
	status, err := reaper.Default.Wait(h.cmd, h.ec)
	if err != nil {
		status = -1 // the reaper closed the subscription: nothing will report the exit
	}
	h.procMu.Lock()
	h.released = true
	_ = h.cmd.Process.Release()
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
		_ = h.cmd.Process.Signal(unix.SIGKILL)
	}
}
