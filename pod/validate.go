//go:build linux

package pod

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
)

// maxIDLength bounds a sandbox id: one path element (NAME_MAX); it names the holder's cgroup.
const maxIDLength = 255

// ValidID checks a sandbox id: any name safe as one path element (it names the holder's cgroup
// directory and appears in its argv) is one: not empty, at most maxIDLength bytes, no '/' and no
// NUL, not "." or "..". Anything else is InvalidArgument. (containerd's own controller accepts
// fewer: its identifiers' pattern; a caller of the shim's socket may use any of these.)
func ValidID(id string) error {
	if id == "" || len(id) > maxIDLength || id == "." || id == ".." || strings.ContainsAny(id, "/\x00") {
		return fmt.Errorf("invalid sandbox id %q: %w", id, errdefs.ErrInvalidArgument)
	}
	return nil
}

// validate checks o before anything is written: every refusal is InvalidArgument (or, for an
// arch without a holder, NotImplemented). cfg is o.Config, or a zero Config if that is nil.
func validate(o *Options, cfg *Config) error {
	if err := ValidID(o.ID); err != nil {
		return err
	}
	if !filepath.IsAbs(o.Bundle) {
		return fmt.Errorf("sandbox %s: bundle %q is not an absolute path: %w", o.ID, o.Bundle, errdefs.ErrInvalidArgument)
	}
	if fi, err := os.Stat(o.Bundle); err != nil || !fi.IsDir() {
		return fmt.Errorf("sandbox %s: bundle %q is not a directory: %w", o.ID, o.Bundle, errdefs.ErrInvalidArgument)
	}
	if err := validateModes(cfg); err != nil {
		return fmt.Errorf("sandbox %s: %w", o.ID, err)
	}
	if len(cfg.Hostname) > hostnameMax || strings.ContainsAny(cfg.Hostname, "\x00\n") {
		return fmt.Errorf("sandbox %s: hostname %q: longer than %d bytes or with a newline: %w", o.ID, cfg.Hostname, hostnameMax, errdefs.ErrInvalidArgument)
	}
	if _, err := holderImage(); err != nil {
		return fmt.Errorf("sandbox %s: %w", o.ID, err)
	}
	if _, err := podSysctls(cfg, o.NetNSPath); err != nil {
		return fmt.Errorf("sandbox %s: %w", o.ID, err)
	}
	return nil
}

// validateModes checks the pod's namespace modes against what a pause-less pod can be.
func validateModes(c *Config) error {
	for _, m := range []struct {
		name string
		mode NamespaceMode
	}{{"network", c.Network}, {"ipc", c.IPC}, {"pid", c.PID}} {
		if m.mode == ModeTarget {
			return fmt.Errorf("%s namespace mode TARGET: a pod cannot target a container: %w", m.name, errdefs.ErrInvalidArgument)
		}
		if m.mode < ModePod || m.mode > ModeNode {
			return fmt.Errorf("%s namespace mode %d: %w", m.name, m.mode, errdefs.ErrInvalidArgument)
		}
	}
	if c.HasUserns {
		switch c.Userns {
		case ModeNode:
		case ModePod:
			return validateIDMaps(c)
		default:
			return fmt.Errorf("user namespace mode %d: %w", c.Userns, errdefs.ErrInvalidArgument)
		}
	}
	return nil
}

// usernsPod reports whether the pod asked for a user namespace of its own.
func (c *Config) usernsPod() bool { return c.HasUserns && c.Userns == ModePod }

// validateIDMaps checks a user-namespaced pod's maps: at least one uid and one gid range, none
// empty or overflowing, with 0 (the holder starts as the pod's root) and the holder's ids
// (holderID: it runs as 65535:65535, as Kubernetes' pause image) inside them: Kubernetes maps
// the 65536 ids from 0.
func validateIDMaps(c *Config) error {
	for _, m := range []struct {
		kind string
		maps []IDMap
	}{{"uid", c.UIDs}, {"gid", c.GIDs}} {
		if len(m.maps) == 0 {
			return fmt.Errorf("user namespace: no %s mapping: %w", m.kind, errdefs.ErrInvalidArgument)
		}
		for _, e := range m.maps {
			if e.Length == 0 || uint64(e.ContainerID)+uint64(e.Length) > 1<<32 || uint64(e.HostID)+uint64(e.Length) > 1<<32 {
				return fmt.Errorf("user namespace: %s mapping %+v: %w", m.kind, e, errdefs.ErrInvalidArgument)
			}
		}
		for _, id := range []uint32{0, holderID} {
			if !slices.ContainsFunc(m.maps, func(e IDMap) bool { return e.ContainerID <= id && id-e.ContainerID < e.Length }) {
				return fmt.Errorf("user namespace: the %s mappings do not map %d, an id of the pod's holder: %w", m.kind, id, errdefs.ErrInvalidArgument)
			}
		}
	}
	return nil
}

// hostnameMax is the kernel's limit on a hostname (HOST_NAME_MAX).
const hostnameMax = 64

// holderID is the uid and gid of the holder in its user namespace (holder/holder.c: HOLDER_ID).
const holderID = 65535

// sysctl is one of the pod's sysctls, to be written to path (under /proc/sys) by the holder in
// the pod's namespaces.
type sysctl struct {
	key, path, value string
}

// failed is the error of the sysctl the holder could not write: a sysctl the kernel does not
// have, or a value it refuses, is InvalidArgument.
func (s sysctl) failed(errno unix.Errno) error {
	switch errno {
	case unix.ENOENT:
		return fmt.Errorf("sysctl %s: no such sysctl: %w", s.key, errdefs.ErrInvalidArgument)
	case unix.EINVAL:
		return fmt.Errorf("sysctl %s=%q: %w: %w", s.key, s.value, errno, errdefs.ErrInvalidArgument)
	}
	return fmt.Errorf("sysctl %s=%q: %w", s.key, s.value, errno)
}

// ipcSysctls are the sysctls of an IPC namespace besides fs.mqueue.* (ipc/ipc_sysctl.c).
var ipcSysctls = map[string]bool{
	"kernel.msgmax": true, "kernel.msgmnb": true, "kernel.msgmni": true, "kernel.sem": true,
	"kernel.shmall": true, "kernel.shmmax": true, "kernel.shmmni": true, "kernel.shm_rmid_forced": true,
}

// podSysctls checks the pod's sysctls and returns them in key order with their paths. Only
// sysctls of the namespaces the pod has of its own may be set: IPC ones (kernel.shm*, msg*,
// sem, fs.mqueue.*) with a pod IPC namespace, net.* with a network namespace that is not the
// shim's, kernel.domainname with a pod UTS namespace (that is, not host network). kernel.hostname
// is the pod's hostname field's; anything else would change the host.
func podSysctls(c *Config, netns string) ([]sysctl, error) {
	all := withCRIDefaults(c, netns)
	keys := make([]string, 0, len(all))
	for k := range all {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]sysctl, 0, len(keys))
	for _, k := range keys {
		dotted := dotSeparated(k)
		path, err := sysctlPath(dotted)
		if err != nil {
			return nil, err
		}
		if err := sysctlAllowed(dotted, c, netns); err != nil {
			return nil, err
		}
		if strings.ContainsAny(all[k], "\x00\n") {
			return nil, fmt.Errorf("sysctl %s: value %q has a newline or NUL: %w", dotted, all[k], errdefs.ErrInvalidArgument)
		}
		out = append(out, sysctl{key: dotted, path: path, value: all[k]})
	}
	return out, nil
}

// criDefaultSysctls are what containerd's CRI plugin gives every pod with a network of its own
// on the pause path unless the pod sets them (enable_unprivileged_ports and
// enable_unprivileged_icmp, both on by default: podsandbox's sandboxContainerSpec): binding ports
// below 1024 and ping without privileges. In shim mode the CRI plugin leaves them to the sandbox,
// which cannot read the CRI config: it applies the defaults.
var criDefaultSysctls = map[string]string{
	"net.ipv4.ip_unprivileged_port_start": "0",
	"net.ipv4.ping_group_range":           "0 2147483647",
}

// withCRIDefaults returns the pod's sysctls with criDefaultSysctls added for a pod with a
// network namespace of its own (ping_group_range not with a user namespace, as CRI does).
func withCRIDefaults(c *Config, netns string) map[string]string {
	if c.Network == ModeNode || netns == "" {
		return c.Sysctls
	}
	all := make(map[string]string, len(c.Sysctls)+len(criDefaultSysctls))
	for k, v := range criDefaultSysctls {
		if k == "net.ipv4.ping_group_range" && c.HasUserns && c.Userns == ModePod {
			continue
		}
		all[k] = v
	}
	for k, v := range c.Sysctls {
		all[dotSeparated(k)] = v
	}
	return all
}

// sysctlAllowed refuses a sysctl that is not in a namespace of the pod's own.
func sysctlAllowed(key string, c *Config, netns string) error {
	switch {
	case ipcSysctls[key] || strings.HasPrefix(key, "fs.mqueue."):
		if c.IPC == ModeNode {
			return fmt.Errorf("sysctl %s is not allowed with host IPC: %w", key, errdefs.ErrInvalidArgument)
		}
	case strings.HasPrefix(key, "net."):
		if c.Network == ModeNode {
			return fmt.Errorf("sysctl %s is not allowed with host network: %w", key, errdefs.ErrInvalidArgument)
		}
		if netns == "" {
			return fmt.Errorf("sysctl %s is not allowed without a network namespace path: %w", key, errdefs.ErrInvalidArgument)
		}
		if sameFile(netns, "/proc/self/ns/net") {
			return fmt.Errorf("sysctl %s is not allowed: %s is the host's network namespace: %w", key, netns, errdefs.ErrInvalidArgument)
		}
	case key == "kernel.domainname":
		if c.Network == ModeNode {
			return fmt.Errorf("sysctl %s is not allowed with host network (host UTS namespace): %w", key, errdefs.ErrInvalidArgument)
		}
	case key == "kernel.hostname":
		return fmt.Errorf("sysctl %s is not allowed: the pod's hostname sets it: %w", key, errdefs.ErrInvalidArgument)
	default:
		return fmt.Errorf("sysctl %s is not namespaced: %w", key, errdefs.ErrInvalidArgument)
	}
	return nil
}

// dotSeparated returns key in the dotted form: a key whose first separator is '/' is in the
// slash form ("net/ipv4/conf/eth0.100/rp_filter"), where '.' and '/' trade places
// ("net.ipv4.conf.eth0/100.rp_filter"), as runc and the kubelet read them.
func dotSeparated(key string) string {
	if i := strings.IndexAny(key, "./"); i < 0 || key[i] == '.' {
		return key
	}
	return swapDotSlash(key)
}

// sysctlPath returns the /proc/sys path of a dotted key; a key that is empty, has an empty,
// "." or ".." component, or a NUL is InvalidArgument.
func sysctlPath(dotted string) (string, error) {
	rel := swapDotSlash(dotted)
	for _, part := range strings.Split(rel, "/") {
		if part == "" || part == "." || part == ".." || strings.ContainsAny(part, "\x00 \t\n") {
			return "", fmt.Errorf("sysctl %q: invalid name: %w", dotted, errdefs.ErrInvalidArgument)
		}
	}
	return "/proc/sys/" + rel, nil
}

func swapDotSlash(s string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case '.':
			return '/'
		case '/':
			return '.'
		}
		return r
	}, s)
}

// sameFile reports whether paths a and b name the same file (inode).
func sameFile(a, b string) bool {
	fa, err := os.Stat(a)
	if err != nil {
		return false
	}
	fb, err := os.Stat(b)
	return err == nil && os.SameFile(fa, fb)
}
