//go:build linux

package oom

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
)

// Mode is the cgroup version a Watcher reads.
type Mode int

const (
	// V1 watches cgroup v1 memory cgroups (memory.oom_control).
	V1 Mode = 1
	// V2 watches cgroup v2 groups (memory.events, cgroup.events).
	V2 Mode = 2
)

func (m Mode) String() string {
	switch m {
	case V1:
		return "cgroup v1"
	case V2:
		return "cgroup v2"
	}
	return fmt.Sprintf("cgroup mode %d", int(m))
}

// source is the kernel side of one watch: an fd that becomes readable when the kill counter
// may have changed, and the files to read it from.
type source interface {
	// fd is what the watcher's epoll instance polls.
	fd() int
	// drain consumes the readiness of fd (non-blocking). notified reports an OOM notification
	// (cgroup v1: the kernel signals an OOM situation before it kills, so the kill counter may
	// not have grown yet when the notification is read).
	drain() (notified bool, err error)
	// read returns the cgroup's OOM-kill count and whether the cgroup is finished (empty or
	// removed: no further kill can come). known is false when the count cannot be read (the
	// cgroup is gone); kills is then meaningless.
	read() (kills uint64, known, finished bool, err error)
	close() error
}

// open starts a watch of the cgroup directory dir.
func (m Mode) open(dir string) (source, error) {
	switch m {
	case V1:
		return openV1(dir)
	case V2:
		return openV2(dir)
	}
	return nil, fmt.Errorf("%s: %w", m, errdefs.ErrNotImplemented)
}

func notFoundIfGone(err error) error {
	if isGone(err) {
		return fmt.Errorf("%w: %w", err, errdefs.ErrNotFound)
	}
	return err
}

// isGone: the file or its cgroup has been removed. A read of a removed cgroup's file can fail
// with ENODEV rather than ENOENT.
func isGone(err error) bool {
	return errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ENODEV) || errors.Is(err, unix.ESRCH)
}

// v1Source is a cgroup v1 memory cgroup's OOM notification eventfd.
type v1Source struct {
	dir string
	efd int
}

func openV1(dir string) (_ source, retErr error) {
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	defer func() {
		if retErr != nil {
			_ = unix.Close(efd)
		}
	}()
	ctl, err := os.Open(filepath.Join(dir, "memory.oom_control"))
	if err != nil {
		return nil, notFoundIfGone(err)
	}
	// The kernel keeps its own reference to memory.oom_control once registered; closing the
	// eventfd unregisters the notification.
	defer func() { _ = ctl.Close() }()
	reg := fmt.Sprintf("%d %d", efd, ctl.Fd())
	if err := os.WriteFile(filepath.Join(dir, "cgroup.event_control"), []byte(reg), 0); err != nil {
		return nil, notFoundIfGone(fmt.Errorf("register OOM notification: %w", err))
	}
	return &v1Source{dir: dir, efd: efd}, nil
}

func (s *v1Source) fd() int { return s.efd }

func (s *v1Source) drain() (bool, error) {
	var buf [8]byte
	for {
		n, err := unix.Read(s.efd, buf[:])
		switch {
		case errors.Is(err, unix.EAGAIN):
			return false, nil
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			return false, fmt.Errorf("read eventfd: %w", err)
		}
		return n == 8 && binary.NativeEndian.Uint64(buf[:]) > 0, nil
	}
}

func (s *v1Source) read() (uint64, bool, bool, error) {
	raw, err := os.ReadFile(filepath.Join(s.dir, "memory.oom_control"))
	if err != nil {
		if isGone(err) {
			// The eventfd is also signalled when the cgroup is removed.
			return 0, false, true, nil
		}
		return 0, false, false, err
	}
	kv, err := parseKV(raw)
	if err != nil {
		return 0, false, false, fmt.Errorf("%s: %w", filepath.Join(s.dir, "memory.oom_control"), err)
	}
	// Kernels before 4.13 have no oom_kill line: only notifications are reported there.
	return kv["oom_kill"], true, false, nil
}

func (s *v1Source) close() error { return unix.Close(s.efd) }

// v2Source is an inotify instance watching a cgroup v2 group's memory.events and cgroup.events.
type v2Source struct {
	dir string
	ifd int
}

func openV2(dir string) (_ source, retErr error) {
	ifd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("inotify: %w", err)
	}
	defer func() {
		if retErr != nil {
			_ = unix.Close(ifd)
		}
	}()
	for _, name := range []string{"memory.events", "cgroup.events"} {
		if _, err := unix.InotifyAddWatch(ifd, filepath.Join(dir, name), unix.IN_MODIFY); err != nil {
			return nil, notFoundIfGone(fmt.Errorf("watch %s: %w", filepath.Join(dir, name), err))
		}
	}
	return &v2Source{dir: dir, ifd: ifd}, nil
}

func (s *v2Source) fd() int { return s.ifd }

// drain empties the inotify queue. A change of memory.events is not an OOM by itself (it also
// counts "high" and "max" events): v2 never reports a notification, only counter growth.
func (s *v2Source) drain() (bool, error) {
	var buf [16 * (unix.SizeofInotifyEvent + unix.NAME_MAX + 1)]byte
	for {
		_, err := unix.Read(s.ifd, buf[:])
		switch {
		case err == nil:
		case errors.Is(err, unix.EAGAIN):
			return false, nil
		case errors.Is(err, unix.EINTR):
		default:
			return false, fmt.Errorf("read inotify: %w", err)
		}
	}
}

func (s *v2Source) read() (uint64, bool, bool, error) {
	// cgroup.events first: a group seen empty here has had all its kills counted by the time
	// memory.events is read (the kernel counts a kill before the victim can die). The other
	// order could miss a kill made between the two reads and then release the watch.
	finished := false
	ev, err := os.ReadFile(filepath.Join(s.dir, "cgroup.events"))
	switch {
	case err == nil:
		evKV, err := parseKV(ev)
		if err != nil {
			return 0, false, false, fmt.Errorf("%s: %w", filepath.Join(s.dir, "cgroup.events"), err)
		}
		populated, ok := evKV["populated"]
		finished = ok && populated == 0
	case isGone(err):
		finished = true
	default:
		return 0, false, false, err
	}
	mem, err := os.ReadFile(filepath.Join(s.dir, "memory.events"))
	if err != nil {
		if isGone(err) {
			return 0, false, true, nil
		}
		return 0, false, finished, err
	}
	memKV, err := parseKV(mem)
	if err != nil {
		return 0, false, finished, fmt.Errorf("%s: %w", filepath.Join(s.dir, "memory.events"), err)
	}
	return memKV["oom_kill"], true, finished, nil
}

func (s *v2Source) close() error { return unix.Close(s.ifd) }

// parseKV parses cgroup "key value" lines (memory.oom_control, memory.events, cgroup.events).
// Negative values (never expected here) read as 0.
func parseKV(raw []byte) (map[string]uint64, error) {
	out := map[string]uint64{}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 2 {
			return nil, fmt.Errorf("malformed line %q: %w", line, errdefs.ErrInvalidArgument)
		}
		v, err := strconv.ParseUint(f[1], 10, 64)
		if err != nil {
			if n, ierr := strconv.ParseInt(f[1], 10, 64); ierr == nil && n < 0 {
				v = 0
			} else {
				return nil, fmt.Errorf("malformed value in %q: %w", line, errdefs.ErrInvalidArgument)
			}
		}
		out[f[0]] = v
	}
	return out, sc.Err()
}
