//go:build linux

package manager

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"time"

	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/ttrpc"
	"golang.org/x/sys/unix"

	"github.com/custom-shim/containerd-shim-custom-v1/lifetime"
)

// Bounds of the start action's look at a group's live server.
const (
	// probeTimeout bounds the question whether the server is shutting down; a server that does
	// not answer in time is taken as serving (as before the question existed).
	probeTimeout = time.Second
	// closingWait bounds the wait for a server that is shutting down to exit: its exit is bounded
	// by its flush of undelivered events (4 s) and pkg/shim's callback timeout (5 s).
	closingWait = 10 * time.Second
)

// serverState is what a probe of a group's live server found.
type serverState int

const (
	serverServing serverState = iota // it takes the new container
	serverClosing                    // it is shutting down: wait for its pid to exit
	serverGone                       // it went away between the checks: listen again
)

// probeServer asks the server at addr whether it is shutting down, and for its pid: it answers
// Connect without a container id with Version "closing" then (task.service.Connect,
// lifetime.ClosingVersion). Such a server takes no new container, and its exit removes the socket at addr
// (pkg/shim's cleanupSockets): a start that joined it, or that made a new socket there before it
// exited, would hand containerd a socket about to vanish (a container id run again right after
// its task was deleted, as `ctr run --rm` in a loop does, met the last server of that id 3 times
// in 100). A server that cannot be reached any more is gone; one that does not answer in time
// is taken as serving, as before the question existed.
func probeServer(ctx context.Context, addr string) (serverState, int) {
	conn, err := net.DialTimeout("unix", strings.TrimPrefix(addr, "unix://"), probeTimeout)
	if err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ECONNREFUSED) {
			return serverGone, 0
		}
		return serverServing, 0
	}
	client := ttrpc.NewClient(conn)
	defer func() { _ = client.Close() }() // closes conn: a probe, nothing written to lose
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	resp, err := taskAPI.NewTTRPCTaskClient(client).Connect(ctx, &taskAPI.ConnectRequest{})
	switch {
	case err == nil && resp.Version == lifetime.ClosingVersion:
		return serverClosing, int(resp.ShimPid)
	case err == nil:
		return serverServing, 0
	case errors.Is(err, ttrpc.ErrClosed) || errors.Is(err, io.EOF) || errors.Is(err, unix.ECONNRESET) || errors.Is(err, unix.EPIPE):
		return serverGone, 0 // it exited while we asked
	}
	return serverServing, 0 // busy (timeout) or another answer: as before the question existed
}

// waitExited waits, bounded by closingWait, until process pid has exited; it reports whether it
// did. Where the kernel has no pidfds it polls the pid.
func waitExited(pid int) bool {
	fd, err := unix.PidfdOpen(pid, 0)
	if errors.Is(err, unix.ESRCH) {
		return true
	}
	if err != nil {
		deadline := time.Now().Add(closingWait)
		for unix.Kill(pid, 0) == nil {
			if time.Now().After(deadline) {
				return false
			}
			time.Sleep(5 * time.Millisecond)
		}
		return true
	}
	defer func() { _ = unix.Close(fd) }() // a pidfd
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	deadline := time.Now().Add(closingWait)
	for {
		n, err := unix.Poll(fds, int(time.Until(deadline)/time.Millisecond))
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil || n == 0:
			return false
		}
		return true
	}
}
