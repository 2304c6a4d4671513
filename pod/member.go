//go:build linux

package pod

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/containerd/errdefs"
)

// sandboxIDAnnotation, set by containerd's CRI plugin on every container of a pod, names the
// pod's sandbox.
const sandboxIDAnnotation = "io.kubernetes.cri.sandbox-id"

// The destinations PatchMember provides in a member container.
const (
	etcHostname = "/etc/hostname"
	etcHosts    = "/etc/hosts"
	etcResolv   = "/etc/resolv.conf"
	devShm      = "/dev/shm"
)

// memberSpec is what PatchMember reads of a member's OCI spec.
type memberSpec struct {
	Annotations map[string]string `json:"annotations"`
	Root        *struct {
		Readonly bool `json:"readonly"`
	} `json:"root"`
	Linux *struct {
		Namespaces []struct {
			Type string `json:"type"`
			Path string `json:"path"`
		} `json:"namespaces"`
	} `json:"linux"`
}

// mount is an OCI mount (the fields PatchMember writes or reads), in the spec's field order.
type mount struct {
	Destination string   `json:"destination"`
	Type        string   `json:"type,omitempty"`
	Source      string   `json:"source,omitempty"`
	Options     []string `json:"options,omitempty"`
}

// PatchMember adds the pod's shared files to the OCI spec (config.json) of a member container's
// bundle, before the OCI runtime creates it (in shim mode containerd's CRI plugin leaves these
// mounts to the sandbox):
//   - /etc/hostname, /etc/hosts, /etc/resolv.conf: a bind mount of the pod's file (rbind,
//     rprivate, and ro when the spec's root is read-only) unless the spec already mounts
//     something there;
//   - /dev/shm, only for a container that shares the pod's IPC namespace (its spec's ipc
//     namespace is /proc/<holder pid>/ns/ipc): the default private tmpfs there is replaced by a
//     bind of <bundle>/shm (rbind, rprivate, nosuid, nodev, noexec); a bind there (a volume of
//     the user's) is kept, and a container with an IPC namespace of its own, or the host's,
//     keeps its /dev/shm.
//
// Only the spec's mounts change; every other member keeps its meaning (the JSON is re-encoded,
// compacted and with sorted keys), and the file is replaced atomically. A spec whose
// io.kubernetes.cri.sandbox-id annotation is not p's id is left alone, and so is one that needs
// no change. A spec that cannot be read or decoded is InvalidArgument.
func (p *Pod) PatchMember(bundle string) error {
	path := filepath.Join(bundle, "config.json")
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("sandbox %s: read member spec: %v: %w", p.id, err, errdefs.ErrInvalidArgument) //nolint:errorlint // cause as text: one class in the chain (process/doc.go)
	}
	var doc map[string]json.RawMessage
	var spec memberSpec
	var mounts []json.RawMessage
	if err := decodeMember(raw, &doc, &spec, &mounts); err != nil {
		return fmt.Errorf("sandbox %s: decode member spec %s: %v: %w", p.id, path, err, errdefs.ErrInvalidArgument) //nolint:errorlint // cause as text: one class in the chain (process/doc.go)
	}
	if spec.Annotations[sandboxIDAnnotation] != p.id {
		return nil
	}
	mounts, changed, err := p.memberMounts(&spec, mounts)
	if err != nil || !changed {
		return err
	}
	if doc["mounts"], err = json.Marshal(mounts); err != nil {
		return fmt.Errorf("sandbox %s: encode member mounts: %w", p.id, err)
	}
	out, err := json.Marshal(doc)
	if err != nil {
		return fmt.Errorf("sandbox %s: encode member spec: %w", p.id, err)
	}
	if err := replaceFile(path, out); err != nil {
		return fmt.Errorf("sandbox %s: write member spec: %w", p.id, err)
	}
	return nil
}

// decodeMember decodes a spec into its members (raw), the fields PatchMember reads, and its
// mounts (raw).
func decodeMember(raw []byte, doc *map[string]json.RawMessage, spec *memberSpec, mounts *[]json.RawMessage) error {
	if err := json.Unmarshal(raw, doc); err != nil {
		return err
	}
	if *doc == nil {
		return fmt.Errorf("spec is null")
	}
	if err := json.Unmarshal(raw, spec); err != nil {
		return err
	}
	if m := (*doc)["mounts"]; len(m) > 0 {
		return json.Unmarshal(m, mounts)
	}
	return nil
}

// memberMounts returns mounts with the pod's added; changed is false if there was nothing to add.
func (p *Pod) memberMounts(spec *memberSpec, mounts []json.RawMessage) (_ []json.RawMessage, changed bool, _ error) {
	parsed := make([]mount, len(mounts))
	for i, m := range mounts {
		if err := json.Unmarshal(m, &parsed[i]); err != nil {
			return nil, false, fmt.Errorf("sandbox %s: member spec mount %d: %v: %w", p.id, i, err, errdefs.ErrInvalidArgument) //nolint:errorlint // cause as text: one class in the chain (process/doc.go)
		}
	}
	var add []mount
	if p.sharesIPC(spec) {
		shm := mount{devShm, "bind", filepath.Join(p.bundle, shmDir), []string{"rbind", "rprivate", "nosuid", "nodev", "noexec"}}
		switch i := mountAt(parsed, devShm); {
		case i < 0:
			add = append(add, shm)
		case parsed[i].Type == "tmpfs":
			b, err := json.Marshal(shm)
			if err != nil {
				return nil, false, err
			}
			mounts[i], changed = b, true
		}
	}
	ro := spec.Root != nil && spec.Root.Readonly
	for _, f := range []struct{ dest, name string }{{etcHostname, hostnameFile}, {etcHosts, hostsFile}, {etcResolv, resolvFile}} {
		src := filepath.Join(p.bundle, f.name)
		if mountAt(parsed, f.dest) >= 0 || !exists(src) {
			continue
		}
		m := mount{f.dest, "bind", src, []string{"rbind", "rprivate"}}
		if ro {
			m.Options = append(m.Options, "ro")
		}
		add = append(add, m)
	}
	for _, m := range add {
		b, err := json.Marshal(m)
		if err != nil {
			return nil, false, err
		}
		mounts, changed = append(mounts, b), true
	}
	return mounts, changed, nil
}

// sharesIPC reports whether the member joins the pod's IPC namespace, and the pod has a /dev/shm
// of its own to give it.
func (p *Pod) sharesIPC(spec *memberSpec) bool {
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
func mountAt(mounts []mount, dest string) int {
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

// replaceFile replaces path's content with b atomically (a temporary file renamed over it),
// keeping its mode.
func replaceFile(path string, b []byte) error {
	mode := os.FileMode(0o644)
	if fi, err := os.Stat(path); err == nil {
		mode = fi.Mode().Perm()
	}
	tmp := path + ".pod.tmp"
	if err := os.WriteFile(tmp, b, mode); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return nil
}
