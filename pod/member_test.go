//go:build linux

package pod

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	ocibundle "github.com/custom-shim/containerd-shim-custom-v1/bundle"
)

const testHolderPid = 4242

// memberPod is a Ready pod whose holder is testHolderPid, with its files in a temp bundle (shm
// a plain directory: no mount needed here).
func memberPod(t *testing.T, ipc NamespaceMode) *Pod {
	t.Helper()
	bundle := t.TempDir()
	for _, name := range []string{hostnameFile, hostsFile, resolvFile} {
		if err := os.WriteFile(filepath.Join(bundle, name), []byte(name), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if ipc != ModeNode {
		if err := os.Mkdir(filepath.Join(bundle, shmDir), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	return &Pod{
		id: "pod1", bundle: bundle, cfg: Config{IPC: ipc}, state: Ready,
		holder: &holder{pid: testHolderPid}, done: make(chan struct{}),
	}
}

// patchMember reads the spec of bundle dir, patches it with patch and writes it back, as the
// Task service's Create does.
func patchMember(patch func(*ocibundle.Spec) error, dir string) error {
	spec, err := ocibundle.Read(dir)
	if err != nil {
		return err
	}
	if err := patch(spec); err != nil {
		return err
	}
	return spec.Write()
}

// memberBundle writes a member's config.json as containerd's CRI plugin builds it in shim mode
// (containerd's default spec, the pod's namespaces, the sandbox-id annotation) with opts, and
// returns the bundle.
func memberBundle(t *testing.T, sandboxID string, opts ...oci.SpecOpts) string {
	t.Helper()
	ctx := namespaces.WithNamespace(t.Context(), "k8s.io")
	base := []oci.SpecOpts{
		oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: fmt.Sprintf("/proc/%d/ns/net", testHolderPid)}),
		oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.UTSNamespace, Path: fmt.Sprintf("/proc/%d/ns/uts", testHolderPid)}),
		oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.IPCNamespace, Path: fmt.Sprintf("/proc/%d/ns/ipc", testHolderPid)}),
		oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.PIDNamespace, Path: fmt.Sprintf("/proc/%d/ns/pid", testHolderPid)}),
		oci.WithAnnotations(map[string]string{
			ocibundle.SandboxIDAnnotation: sandboxID, "io.kubernetes.cri.container-type": "container",
		}),
	}
	spec, err := oci.GenerateSpec(ctx, nil, &containers.Container{ID: "c1"}, append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.MarshalIndent(spec, "", "\t")
	if err != nil {
		t.Fatal(err)
	}
	bundle := t.TempDir()
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	return bundle
}

func readSpec(t *testing.T, bundle string) (*specs.Spec, []byte) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var s specs.Spec
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	return &s, b
}

// withoutMounts returns the spec's JSON members other than mounts, decoded.
func withoutMounts(t *testing.T, raw []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	delete(m, "mounts")
	return m
}

func TestPatchMember(t *testing.T) {
	bindShm := func(p *Pod) specs.Mount {
		return specs.Mount{Destination: devShm, Type: "bind", Source: filepath.Join(p.bundle, shmDir), Options: []string{"rbind", "rprivate", "nosuid", "nodev", "noexec"}}
	}
	file := func(p *Pod, dest, name string, ro bool) specs.Mount {
		m := specs.Mount{Destination: dest, Type: "bind", Source: filepath.Join(p.bundle, name), Options: []string{"rbind", "rprivate"}}
		if ro {
			m.Options = append(m.Options, "ro")
		}
		return m
	}
	files := func(p *Pod, ro bool) []specs.Mount {
		return []specs.Mount{file(p, etcHostname, hostnameFile, ro), file(p, etcHosts, hostsFile, ro), file(p, etcResolv, resolvFile, ro)}
	}
	volume := specs.Mount{Destination: devShm, Type: "bind", Source: "/var/lib/kubelet/pods/x/volumes/shm", Options: []string{"rbind", "rprivate"}}
	hostsVolume := specs.Mount{Destination: etcHosts + "/", Type: "bind", Source: "/var/lib/kubelet/pods/x/etc-hosts", Options: []string{"rbind"}}

	for _, tc := range []struct {
		name string
		ipc  NamespaceMode // the pod's
		opts []oci.SpecOpts
		// want returns what the mounts become from the default ones: the shm mount at its
		// index (nil: unchanged) and the mounts appended.
		want func(p *Pod) (shm *specs.Mount, added []specs.Mount)
	}{
		{"shares pod IPC", ModePod, nil, func(p *Pod) (*specs.Mount, []specs.Mount) {
			m := bindShm(p)
			return &m, files(p, false)
		}},
		{"read-only root", ModePod, []oci.SpecOpts{oci.WithRootFSReadonly()}, func(p *Pod) (*specs.Mount, []specs.Mount) {
			m := bindShm(p)
			return &m, files(p, true)
		}},
		{"own IPC namespace", ModePod, []oci.SpecOpts{oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.IPCNamespace})},
			func(p *Pod) (*specs.Mount, []specs.Mount) { return nil, files(p, false) }},
		{"host IPC container", ModePod, []oci.SpecOpts{oci.WithHostNamespace(specs.IPCNamespace)},
			func(p *Pod) (*specs.Mount, []specs.Mount) { return nil, files(p, false) }},
		{"host IPC pod", ModeNode, nil,
			func(p *Pod) (*specs.Mount, []specs.Mount) { return nil, files(p, false) }},
		{"user volumes at /dev/shm and /etc/hosts", ModePod, []oci.SpecOpts{oci.WithoutMounts(devShm), oci.WithMounts([]specs.Mount{volume, hostsVolume})},
			func(p *Pod) (*specs.Mount, []specs.Mount) {
				return nil, []specs.Mount{file(p, etcHostname, hostnameFile, false), file(p, etcResolv, resolvFile, false)}
			}},
		{"tmpfs, then a volume at /dev/shm", ModePod, []oci.SpecOpts{oci.WithMounts([]specs.Mount{volume})},
			func(p *Pod) (*specs.Mount, []specs.Mount) { return nil, files(p, false) }},
		{"no /dev/shm mount", ModePod, []oci.SpecOpts{oci.WithoutMounts(devShm)},
			func(p *Pod) (*specs.Mount, []specs.Mount) {
				return nil, append([]specs.Mount{bindShm(p)}, files(p, false)...)
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := memberPod(t, tc.ipc)
			bundle := memberBundle(t, p.id, tc.opts...)
			before, beforeRaw := readSpec(t, bundle)
			if err := patchMember(p.PatchMember, bundle); err != nil {
				t.Fatal(err)
			}
			after, afterRaw := readSpec(t, bundle)
			shm, added := tc.want(p)
			want := append([]specs.Mount{}, before.Mounts...)
			i := -1
			for j, m := range want {
				if filepath.Clean(m.Destination) == devShm {
					i = j
				}
			}
			if i < 0 && shm != nil {
				t.Fatal("the spec has no /dev/shm mount")
			}
			if shm != nil {
				want[i] = *shm // the last mount at /dev/shm: the one the container sees
			}
			want = append(want, added...)
			if !reflect.DeepEqual(after.Mounts, want) {
				t.Fatalf("mounts:\n got %+v\nwant %+v", after.Mounts, want)
			}
			if !reflect.DeepEqual(withoutMounts(t, afterRaw), withoutMounts(t, beforeRaw)) {
				t.Fatal("members other than mounts changed")
			}
			if fi, err := os.Stat(filepath.Join(bundle, "config.json")); err != nil || fi.Mode().Perm() != 0o600 {
				t.Fatalf("mode %v %v", fi.Mode(), err)
			}

			// Once is enough: a second call finds everything there and writes nothing.
			if err := patchMember(p.PatchMember, bundle); err != nil {
				t.Fatal(err)
			}
			if _, again := readSpec(t, bundle); !bytes.Equal(again, afterRaw) {
				t.Fatal("second PatchMember changed the spec")
			}
		})
	}
}

// Containers that are not the pod's members are left alone, byte for byte.
func TestPatchMemberNotAMember(t *testing.T) {
	p := memberPod(t, ModePod)
	for _, id := range []string{"other-pod", ""} {
		bundle := memberBundle(t, id)
		_, before := readSpec(t, bundle)
		if err := patchMember(p.PatchMember, bundle); err != nil {
			t.Fatal(err)
		}
		if _, after := readSpec(t, bundle); !bytes.Equal(before, after) {
			t.Fatalf("sandbox id %q: spec changed", id)
		}
	}
}

// A spec that cannot be read or decoded is InvalidArgument.
func TestPatchMemberInvalid(t *testing.T) {
	p := memberPod(t, ModePod)
	for name, content := range map[string]string{
		"not JSON":         "{",
		"null":             "null",
		"mounts not array": `{"annotations":{"io.kubernetes.cri.sandbox-id":"pod1"},"mounts":{}}`,
		"bad mount":        `{"annotations":{"io.kubernetes.cri.sandbox-id":"pod1"},"mounts":[{"destination":1}]}`,
		"no config.json":   "",
	} {
		bundle := t.TempDir()
		if content != "" {
			if err := os.WriteFile(filepath.Join(bundle, "config.json"), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if err := patchMember(p.PatchMember, bundle); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%s: %v, want InvalidArgument", name, err)
		}
	}
}

// Through the Set: a member of a pod of the set is patched; a container of no pod of the set
// (or of no pod) is not.
func TestSetPatchMember(t *testing.T) {
	s := NewSet()
	p := memberPod(t, ModePod)
	if err := s.Add(p); err != nil {
		t.Fatal(err)
	}
	bundle := memberBundle(t, p.id)
	_, before := readSpec(t, bundle)
	other := memberBundle(t, "unknown")
	_, otherBefore := readSpec(t, other)
	if err := patchMember(s.PatchMember, other); err != nil {
		t.Fatal(err)
	}
	if _, after := readSpec(t, other); !bytes.Equal(otherBefore, after) {
		t.Fatal("patched for another sandbox")
	}
	if _, after := readSpec(t, bundle); !bytes.Equal(before, after) {
		t.Fatal("patched before it was asked to")
	}
	if err := patchMember(s.PatchMember, bundle); err != nil {
		t.Fatal(err)
	}
	if after, _ := readSpec(t, bundle); len(after.Mounts) == 0 || after.Mounts[len(after.Mounts)-1].Destination != etcResolv {
		t.Fatalf("not patched: %+v", after.Mounts)
	}
}
