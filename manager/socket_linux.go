//go:build linux

package manager

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/pkg/shim"
)

// errServerRunning reports that a live shim server already listens on a group's socket.
var errServerRunning = errors.New("shim server already running")

// listen creates the unix socket at addr (0600, in a 0700 directory: shim.NewSocket). When the
// address is in use it returns errServerRunning if a server answers there (another container of
// the group started it), or removes the stale socket of a dead server and creates it again.
func listen(addr string) (*net.UnixListener, error) {
	l, err := shim.NewSocket(addr)
	if err == nil {
		return l, nil
	}
	if !shim.SocketEaddrinuse(err) {
		return nil, fmt.Errorf("create shim socket %s: %w", addr, err)
	}
	if !socketDead(addr) {
		return nil, errServerRunning
	}
	if err := shim.RemoveSocket(addr); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("remove stale shim socket %s: %w", addr, err)
	}
	l, err = shim.NewSocket(addr)
	if err != nil {
		return nil, fmt.Errorf("recreate shim socket %s: %w", addr, err)
	}
	return l, nil
}

// socketDead reports whether the unix socket at addr has no server: a connect is refused (or
// the file is gone). Any other outcome, including a timeout or EAGAIN from a busy server's full
// backlog, counts as alive: removing a live server's socket would cut the group off from
// containerd (shim.CanConnect's 100 ms timeout says "dead" for a server slowed by load).
func socketDead(addr string) bool {
	path := strings.TrimPrefix(addr, "unix://")
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		_ = c.Close()
		return false
	}
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT)
}

// detach returns a duplicate of l's descriptor, for the server to inherit, and closes l without
// unlinking the socket path (net.UnixListener.Close would remove it from under the server).
// On error the socket path is removed.
func detach(l *net.UnixListener) (*os.File, error) {
	f, err := l.File()
	if err != nil {
		_ = l.Close()
		return nil, fmt.Errorf("duplicate shim socket descriptor: %w", err)
	}
	l.SetUnlinkOnClose(false)
	_ = l.Close()
	return f, nil
}
