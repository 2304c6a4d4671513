//go:build linux

package pod

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
)

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

// ownerUserns returns the user namespace that owns the namespace ns (NS_GET_USERNS), or nil if
// that is the shim's own: for a pod with a user namespace and a network of its own, CRI made
// the network namespace inside the pod's user namespace, and the holder joins that one.
func ownerUserns(ns *os.File) (*os.File, error) {
	fd, err := unix.IoctlRetInt(int(ns.Fd()), unix.NS_GET_USERNS)
	if err != nil {
		return nil, fmt.Errorf("owner of network namespace %s: %w", ns.Name(), err)
	}
	f := os.NewFile(uintptr(fd), "userns of "+ns.Name())
	unix.CloseOnExec(fd)
	var own, got unix.Stat_t
	if err := unix.Stat("/proc/self/ns/user", &own); err != nil {
		_ = f.Close()
		return nil, err
	}
	if err := unix.Fstat(fd, &got); err != nil {
		_ = f.Close()
		return nil, err
	}
	if own.Ino == got.Ino && own.Dev == got.Dev {
		_ = f.Close()
		return nil, nil
	}
	return f, nil
}
