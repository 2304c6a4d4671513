//go:build linux

package lifetime

import (
	"errors"
	"io/fs"
	"os"
	"strconv"
	"strings"

	"github.com/custom-shim/containerd-shim-custom-v1/bundle"
)

// SocketEnv names the environment variable through which the start action tells the server the
// address of its socket ("unix://<path>": the group's, which start bound and handed it as fd 3).
const SocketEnv = "CUSTOM_SHIM_SOCKET"

// addressFile is the file in the server's working directory (its group's first bundle) that
// holds its socket address; pkg/shim removes the socket it names when the server exits.
const addressFile = "address"

// retiredSocket is the socket a server that decided to exit moved its socket to (retire), ""
// before; removeRetired removes it at the very end of the shutdown.
type retiredSocket struct{ path string }

// retire moves the server's socket out of the group's path the moment the server decides to
// exit, before it answers the Shutdown that made it decide: the connections made keep working
// (the server still answers what is in flight and flushes its events), no new one can be made
// to it, and a client that looks for the socket once its Delete has returned finds it gone. The
// group's path is then free for the server of the group's next container, which start may make
// at once: nothing of this server removes that path any more. The socket is renamed to
// <path>.retired-<pid>, and the address file in the working directory (if it is still there),
// from which pkg/shim takes the socket to remove at exit, names the new path; pkg/shim's other
// guess, from -id, is the server's own (start gives each server an -id of its own).
func (r *retiredSocket) retire() {
	path := strings.TrimPrefix(os.Getenv(SocketEnv), "unix://")
	if path == "" || r.path != "" {
		return
	}
	retired := path + ".retired-" + strconv.Itoa(os.Getpid())
	if err := os.Rename(path, retired); err != nil { //nolint:gosec // G703: the path is the start action's (this binary's), handed to the server in its environment
		return // not there (any more): nothing to move, and nothing of ours at path
	}
	r.path = retired
	if _, err := os.Stat(addressFile); err == nil {
		_ = bundle.ReplaceFile(addressFile, []byte("unix://"+retired), 0o644, false)
	}
}

// removeRetired removes the retired socket (once nothing will connect to it again).
func (r *retiredSocket) removeRetired() {
	if r.path == "" {
		return
	}
	if err := os.Remove(r.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return
	}
	r.path = ""
}
