//go:build linux

package harness

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// SharedSocketDir is where both daemons tell shims to put their sockets by default
// (containerd 1.6: pkg/shim socketRoot; 2.x: socket_dir defaults to <state>/s = /run/containerd/s).
const SharedSocketDir = "/run/containerd/s"

// Proc is a process found in /proc.
type Proc struct {
	Pid     int
	Cmdline string
}

func (p Proc) String() string { return fmt.Sprintf("pid %d: %s", p.Pid, p.Cmdline) }

// Leaks is what outlived the containers (or the daemon) it belonged to.
type Leaks struct {
	Processes []Proc   // shim processes (or, at teardown, any process) naming the daemon's dir
	Mounts    []string // mount points under the daemon's dir
	Sockets   []string // shim sockets nobody listens on any more
}

// Empty reports whether nothing leaked.
func (l Leaks) Empty() bool { return len(l.Processes)+len(l.Mounts)+len(l.Sockets) == 0 }

func (l Leaks) String() string {
	var b strings.Builder
	for _, p := range l.Processes {
		fmt.Fprintf(&b, "\n  process %s", p)
	}
	for _, m := range l.Mounts {
		fmt.Fprintf(&b, "\n  mount %s", m)
	}
	for _, s := range l.Sockets {
		fmt.Fprintf(&b, "\n  socket %s", s)
	}
	return b.String()
}

// SocketSnapshot is the set of entries of the shared socket dir at some moment: sockets that
// appear later were created by something started since (shim sockets are named by a hash, so
// this is the only way to find those of short-lived shims without their help).
type SocketSnapshot map[string]bool

// SnapshotSockets lists SharedSocketDir now.
func SnapshotSockets() SocketSnapshot {
	snap := SocketSnapshot{}
	entries, _ := os.ReadDir(SharedSocketDir)
	for _, e := range entries {
		snap[e.Name()] = true
	}
	return snap
}

// StaleSocketsSince returns the sockets of SharedSocketDir that are not in snap and that nothing
// listens on. A live socket is not reported here: if a shim of ours still holds it, that shim
// is reported as a process.
func StaleSocketsSince(snap SocketSnapshot) []string {
	var stale []string
	entries, _ := os.ReadDir(SharedSocketDir)
	for _, e := range entries {
		if snap[e.Name()] || e.Type()&os.ModeSocket == 0 {
			continue
		}
		path := filepath.Join(SharedSocketDir, e.Name())
		if !listening(path) {
			stale = append(stale, path)
		}
	}
	return stale
}

// listening reports whether a unix socket at path accepts connections.
func listening(path string) bool {
	c, err := net.DialTimeout("unix", path, time.Second)
	if err != nil {
		return !errors.Is(err, syscall.ECONNREFUSED) && !errors.Is(err, syscall.ENOENT)
	}
	_ = c.Close()
	return true
}

// socketsUnder lists the unix sockets below dir, except those in keep.
func socketsUnder(dir string, keep map[string]bool) []string {
	var out []string
	_ = filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return nil //nolint:nilerr // best effort: a vanished entry is not a leak
		}
		if d.Type()&os.ModeSocket != 0 && !keep[path] {
			out = append(out, path)
		}
		return nil
	})
	return out
}

// ProcessesNaming returns the processes whose command line contains dir, except pid self.
// With shimsOnly it keeps only those whose argv[0] is a containerd-shim-* binary.
func ProcessesNaming(dir string, shimsOnly bool) []Proc {
	entries, _ := os.ReadDir("/proc")
	var out []Proc
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		raw, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || len(raw) == 0 {
			continue
		}
		args := strings.Split(string(bytes.TrimRight(raw, "\x00")), "\x00")
		cmdline := strings.Join(args, " ")
		if !strings.Contains(cmdline, dir) {
			continue
		}
		if shimsOnly && !strings.HasPrefix(filepath.Base(args[0]), "containerd-shim") {
			continue
		}
		out = append(out, Proc{Pid: pid, Cmdline: cmdline})
	}
	return out
}

// MountsUnder returns the mount points at or below dir, deepest first.
func MountsUnder(dir string) []string {
	raw, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var out []string
	for _, line := range strings.Split(string(raw), "\n") {
		fields := strings.Fields(line)
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMountinfo(fields[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out
}

// unescapeMountinfo undoes the octal escapes (\040 for space, ...) of /proc/*/mountinfo.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// Reap removes leftovers so the next test starts clean: it kills the processes (they name our
// private temp dir, so the harness started them), lazily unmounts the mounts and removes the
// sockets. It returns what it could not remove.
func Reap(l Leaks) error {
	var errs []error
	for _, p := range l.Processes {
		if err := syscall.Kill(p.Pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			errs = append(errs, fmt.Errorf("kill %s: %w", p, err))
		}
	}
	for _, m := range l.Mounts {
		if err := syscall.Unmount(m, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", m, err))
		}
	}
	for _, s := range l.Sockets {
		if err := os.Remove(s); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
