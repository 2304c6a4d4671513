//go:build linux

package pod

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/custom-shim/containerd-shim-custom-v1/bundle"
)

// The destinations PatchMember provides in a member container.
const (
	etcHostname = "/etc/hostname"
	etcHosts    = "/etc/hosts"
	etcResolv   = "/etc/resolv.conf"
	devShm      = "/dev/shm"
)

// PatchMember adds the pod's shared files to the OCI spec of a member container, in memory (the
// caller writes the spec back before the OCI runtime creates the container: process.CreateInit);
// in shim mode containerd's CRI plugin leaves these mounts to the sandbox:
//   - /etc/hostname, /etc/hosts, /etc/resolv.conf: a bind mount of the pod's file (rbind,
//     rprivate, and ro when the spec's root is read-only) unless the spec already mounts
//     something there;
//   - /dev/shm, only for a container that shares the pod's IPC namespace (its spec's ipc
//     namespace is /proc/<holder pid>/ns/ipc): the default private tmpfs there is replaced by a
//     bind of <bundle>/shm (rbind, rprivate, nosuid, nodev, noexec); a bind there (a volume of
//     the user's) is kept, and a container with an IPC namespace of its own, or the host's,
//     keeps its /dev/shm.
//
// Only the spec's mounts change. A spec whose io.kubernetes.cri.sandbox-id annotation is not p's
// id is left alone. A mount that cannot be decoded is InvalidArgument.
func (p *Pod) PatchMember(spec *bundle.Spec) error {
	if spec.Annotation(bundle.SandboxIDAnnotation) != p.id {
		return nil
	}
	mounts, err := spec.Mounts()
	if err != nil {
		return fmt.Errorf("sandbox %s: member spec: %w", p.id, err)
	}
	if p.sharesIPC(spec) {
		shm := bundle.Mount{Destination: devShm, Type: "bind", Source: filepath.Join(p.bundle, shmDir),
			Options: []string{"rbind", "rprivate", "nosuid", "nodev", "noexec"}}
		switch i := mountAt(mounts, devShm); {
		case i < 0:
			err = spec.AddMount(shm)
		case mounts[i].Type == "tmpfs":
			err = spec.SetMount(i, shm)
		}
		if err != nil {
			return fmt.Errorf("sandbox %s: member mounts: %w", p.id, err)
		}
	}
	ro := spec.Root != nil && spec.Root.Readonly
	for _, f := range []struct{ dest, name string }{{etcHostname, hostnameFile}, {etcHosts, hostsFile}, {etcResolv, resolvFile}} {
		src := filepath.Join(p.bundle, f.name)
		if mountAt(mounts, f.dest) >= 0 || !exists(src) {
			continue
		}
		m := bundle.Mount{Destination: f.dest, Type: "bind", Source: src, Options: []string{"rbind", "rprivate"}}
		if ro {
			m.Options = append(m.Options, "ro")
		}
		if err := spec.AddMount(m); err != nil {
			return fmt.Errorf("sandbox %s: member mounts: %w", p.id, err)
		}
	}
	return nil
}

// sharesIPC reports whether the member joins the pod's IPC namespace, and the pod has a /dev/shm
// of its own to give it.
func (p *Pod) sharesIPC(spec *bundle.Spec) bool {
	pid := p.Status().Pid
	if p.cfg.IPC == ModeNode || pid <= 0 || spec.Linux == nil || !exists(filepath.Join(p.bundle, shmDir)) {
		return false
	}
	want := "/proc/" + strconv.Itoa(pid) + "/ns/ipc"
	for _, ns := range spec.Linux.Namespaces {
		if ns.Type == "ipc" {
			return ns.Path == want
		}
	}
	return false
}

// mountAt returns the index of the last mount at dest (the one the container sees), or -1.
func mountAt(mounts []bundle.Mount, dest string) int {
	for i := len(mounts) - 1; i >= 0; i-- {
		if filepath.Clean(mounts[i].Destination) == dest {
			return i
		}
	}
	return -1
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
