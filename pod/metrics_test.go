//go:build linux

package pod

import (
	"errors"
	"fmt"
	"os"
	"testing"

	"github.com/containerd/cgroups/v3"
	"github.com/containerd/cgroups/v3/cgroup1"
	v1stats "github.com/containerd/cgroups/v3/cgroup1/stats"
	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/custom-shim/containerd-shim-custom-v1/internal/shimtest"
)

func TestCgroupPath(t *testing.T) {
	for in, want := range map[string]string{
		"/kubepods/besteffort/pod1":         "/kubepods/besteffort/pod1",
		"kubepods-besteffort-pod0f1e.slice": "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod0f1e.slice",
		"a.slice":                           "/a.slice",
		"a-b-c.slice":                       "/a.slice/a-b.slice/a-b-c.slice",
		"-.slice":                           "/",
		"/kubepods.slice/x.slice":           "/kubepods.slice/x.slice",
	} {
		got, err := cgroupPath(in)
		if err != nil || got != want {
			t.Errorf("cgroupPath(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{".slice", "-a.slice", "a-.slice", "a--b.slice"} {
		if _, err := cgroupPath(in); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("cgroupPath(%q): %v, want InvalidArgument", in, err)
		}
	}
}

// No cgroup parent, or one not on disk: NotFound.
func TestMetricsNotFound(t *testing.T) {
	for _, parent := range []string{"", "/pod-test-nonexistent-cgroup", "pod-test-nonexistent.slice"} {
		p := &Pod{id: "pod1", cfg: Config{CgroupParent: parent}}
		if st, err := p.Metrics(); !errors.Is(err, errdefs.ErrNotFound) {
			t.Errorf("parent %q: %v %v, want NotFound", parent, st, err)
		}
	}
}

// The statistics of a real cgroup v1 pod cgroup, by path and by systemd slice name: cgroup1's
// stats.Metrics, with the memory and CPU of the group.
func TestMetricsV1(t *testing.T) {
	shimtest.RequireRoot(t)
	if cgroups.Mode() == cgroups.Unified {
		t.Skip("cgroup v2 host")
	}
	prefix := fmt.Sprintf("podtest%d", os.Getpid())
	for _, tc := range []struct{ parent, path, top string }{
		{"/" + prefix, "/" + prefix, ""},
		{prefix + "-m.slice", "/" + prefix + ".slice/" + prefix + "-m.slice", "/" + prefix + ".slice"},
	} {
		cg, err := cgroup1.New(cgroup1.StaticPath(tc.path), &specs.LinuxResources{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = cg.Delete()
			if top, err := cgroup1.Load(cgroup1.StaticPath(tc.top)); tc.top != "" && err == nil {
				_ = top.Delete()
			}
		})
		p := &Pod{id: "pod1", cfg: Config{CgroupParent: tc.parent}}
		got, err := p.Metrics()
		if err != nil {
			t.Fatalf("%s: %v", tc.parent, err)
		}
		m, ok := got.(*v1stats.Metrics)
		if !ok || m.Memory == nil || m.CPU == nil {
			t.Fatalf("%s: %T %+v", tc.parent, got, got)
		}
	}
}

// The pod's cgroup is loaded once and kept; a cgroup removed meanwhile answers NotFound (not
// zeros read from no files), and one made again is loaded again.
func TestMetricsV1Kept(t *testing.T) {
	shimtest.RequireRoot(t)
	if cgroups.Mode() == cgroups.Unified {
		t.Skip("cgroup v2 host")
	}
	path := fmt.Sprintf("/podtest%d-kept", os.Getpid())
	create := func() cgroup1.Cgroup {
		cg, err := cgroup1.New(cgroup1.StaticPath(path), &specs.LinuxResources{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cg.Delete() })
		return cg
	}
	cg := create()
	p := &Pod{id: "pod1", cfg: Config{CgroupParent: path}}
	for i := range 2 {
		if _, err := p.Metrics(); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		if p.stats.stat == nil {
			t.Fatalf("call %d: the pod's cgroup is not kept", i)
		}
	}
	if err := cg.Delete(); err != nil {
		t.Fatal(err)
	}
	if st, err := p.Metrics(); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("removed cgroup: %+v %v, want NotFound", st, err)
	}
	if p.stats.stat != nil {
		t.Fatal("a removed cgroup's handle is kept")
	}
	create()
	if st, err := p.Metrics(); err != nil || st.(*v1stats.Metrics).Memory == nil {
		t.Fatalf("cgroup made again: %+v %v", st, err)
	}
}
