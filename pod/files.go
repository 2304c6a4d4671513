//go:build linux

package pod

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/containerd/log"
	"golang.org/x/sys/unix"
)

// The pod's files in its bundle, mounted into member containers by PatchMember.
const (
	hostnameFile = "hostname"    // the pod's hostname and a newline
	hostsFile    = "hosts"       // a copy of the host's /etc/hosts
	resolvFile   = "resolv.conf" // from the pod's DNS config, or a copy of the host's
	shmDir       = "shm"         // a tmpfs of the pod's own unless the pod has host IPC

	shmSize = 64 << 20 // podsandbox's defaultShmSize
)

// The host's files a pod's files are copied from.
var (
	hostHosts  = "/etc/hosts"
	hostResolv = "/etc/resolv.conf"
)

// podFiles are the names CleanupBundle and removeFiles remove, the shm directory last.
var podFiles = []string{hostnameFile, hostsFile, resolvFile, shmDir}

// writeFiles writes the pod's hostname, hosts and resolv.conf into bundle as podsandbox writes
// its sandbox files (setupSandboxFiles): the hostname is c.Hostname or the host's.
func writeFiles(bundle string, c *Config) error {
	hostname := c.Hostname
	if hostname == "" {
		var err error
		if hostname, err = os.Hostname(); err != nil {
			return fmt.Errorf("get the host's hostname: %w", err)
		}
	}
	if err := writeFile(bundle, hostnameFile, []byte(hostname+"\n")); err != nil {
		return err
	}
	if err := copyFile(hostHosts, bundle, hostsFile); err != nil {
		return err
	}
	if c.DNS == nil {
		return copyFile(hostResolv, bundle, resolvFile)
	}
	return writeFile(bundle, resolvFile, []byte(resolvConf(c.DNS)))
}

// resolvConf renders a DNS config as podsandbox's parseDNSOptions does: a search line, a
// nameserver line per server, an options line, each only if it has entries.
func resolvConf(d *DNSConfig) string {
	var b strings.Builder
	if len(d.Searches) > 0 {
		b.WriteString("search " + strings.Join(d.Searches, " ") + "\n")
	}
	for _, s := range d.Servers {
		b.WriteString("nameserver " + s + "\n")
	}
	if len(d.Options) > 0 {
		b.WriteString("options " + strings.Join(d.Options, " ") + "\n")
	}
	return b.String()
}

func writeFile(bundle, name string, b []byte) error {
	if err := os.WriteFile(filepath.Join(bundle, name), b, 0o644); err != nil { //nolint:gosec // bind-mounted into the pod's containers, whose users read it (CRI's own are 0644)
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}

func copyFile(src, bundle, name string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	return writeFile(bundle, name, b)
}

// mountShm mounts the pod's /dev/shm, a tmpfs at <bundle>/shm with podsandbox's flags and size.
func mountShm(bundle string) error {
	dir := filepath.Join(bundle, shmDir)
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("create shm directory: %w", err)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("shm directory %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("shm directory %s: not a directory", dir) // a symlink would take the mount elsewhere
	}
	data := "mode=1777,size=" + strconv.Itoa(shmSize)
	if err := unix.Mount("shm", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, data); err != nil {
		return fmt.Errorf("mount shm at %s: %w", dir, err)
	}
	return nil
}

// maxShmUnmounts bounds unmountShm: mounts stacked at <bundle>/shm are all the pod's.
const maxShmUnmounts = 8

// unmountShm unmounts whatever is mounted at <bundle>/shm (lazily: the mount copies in member
// containers are mounts of their own and stay); nothing mounted there, or no such directory,
// is no error.
func unmountShm(bundle string) error {
	dir := filepath.Join(bundle, shmDir)
	for range maxShmUnmounts {
		err := unix.Unmount(dir, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW)
		switch {
		case errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOENT):
			return nil // not a mount point (any more)
		case err != nil:
			return fmt.Errorf("unmount %s: %w", dir, err)
		}
	}
	return fmt.Errorf("unmount %s: still mounted after %d unmounts", dir, maxShmUnmounts)
}

// removeFiles removes the pod's files from bundle; the shm directory must be unmounted. Files
// already gone are no error.
func removeFiles(bundle string) error {
	var errs []error
	for _, name := range podFiles {
		if err := os.Remove(filepath.Join(bundle, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// CleanupBundle is for the shim's delete action after a shim died: it removes the holder's
// cgroup (its holder exited with the shim), unmounts <bundle>/shm if something is mounted there
// and removes the pod's files, logging failures. It is safe on any
// bundle: it touches only the pod's file names, and a container's bundle has none of them.
func CleanupBundle(ctx context.Context, bundle string) {
	if bundle == "" || !filepath.IsAbs(bundle) {
		return
	}
	logger := log.G(ctx).WithField("bundle", bundle)
	if err := removeCgroupsFile(bundle); err != nil {
		logger.WithError(err).Warn("pod cleanup: remove the holder's cgroup")
	}
	if err := unmountShm(bundle); err != nil {
		logger.WithError(err).Warn("pod cleanup: unmount shm")
		return // removing the directory would fail, and must not reach into the tmpfs
	}
	if err := removeFiles(bundle); err != nil {
		logger.WithError(err).Warn("pod cleanup: remove the pod's files")
	}
}
