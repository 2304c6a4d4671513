//go:build linux

package process

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/containerd/cgroups/v3"
	"github.com/containerd/cgroups/v3/cgroup1"
	"github.com/containerd/errdefs"

	"github.com/custom-shim/containerd-shim-custom-v1/internal/shimtest"
)

// The mount roots of the v1 controllers, as the shim reads them once: co-mounted controllers,
// named hierarchies, optional fields, a shim in a container (roots other than "/"); cgroup2
// and other filesystems are not cgroup v1 mounts.
func TestCgroupV1Roots(t *testing.T) {
	const mountinfo = `22 1 0:20 / / rw,relatime - overlay overlay rw,lowerdir=/l
25 22 0:22 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
26 25 0:23 / /sys/fs/cgroup/unified rw,nosuid shared:5 - cgroup2 cgroup2 rw,nsdelegate
27 25 0:24 /docker/abc /sys/fs/cgroup/systemd rw,nosuid shared:6 - cgroup cgroup rw,xattr,name=systemd
28 25 0:25 /docker/abc /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:7 master:3 - cgroup cgroup rw,cpu,cpuacct
29 25 0:26 / /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory
30 25 0:26 /other /mnt/memory-again rw - cgroup cgroup rw,memory
not a mountinfo line
`
	want := map[string]string{
		"rw": "/docker/abc", "xattr": "/docker/abc", "name=systemd": "/docker/abc",
		"cpu": "/docker/abc", "cpuacct": "/docker/abc", "memory": "/",
	}
	if got := cgroupV1Roots(mountinfo); !reflect.DeepEqual(got, want) {
		t.Fatalf("roots:\n got %v\nwant %v", got, want)
	}
}

// A process in a memory cgroup of its own: the shim's resolution (mount roots read once) finds,
// for every controller, the group cgroup1.PidPath finds by reading mountinfo each time; the OOM
// directory is the memory group; the metrics read; a gone process is an error.
func TestLoadCgroupV1(t *testing.T) {
	shimtest.RequireRoot(t)
	if cgroups.Mode() == cgroups.Unified {
		t.Skip("cgroup v2 host: no v1 hierarchy")
	}
	dir := filepath.Join("/sys/fs/cgroup/memory", fmt.Sprintf("cst-process-%d", os.Getpid()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	defer func() {
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			if err := os.Remove(dir); err == nil || errors.Is(err, os.ErrNotExist) || time.Now().After(deadline) {
				return
			}
		}
	}()
	cmd := exec.Command("/bin/sh", "-c", `echo $$ > "$1/cgroup.procs" && exec sleep 30`, "sh", dir)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	pid := cmd.Process.Pid
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		b, _ := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
		if strings.TrimSpace(string(b)) == fmt.Sprint(pid) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid %d never joined %s", pid, dir)
		}
	}

	l, err := v1Mounts()
	if err != nil {
		t.Fatal(err)
	}
	ours, err := l.pidPath(pid)
	if err != nil {
		t.Fatal(err)
	}
	theirs := cgroup1.PidPath(pid)
	controllers, err := cgroup1.ParseCgroupFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatal(err)
	}
	for name := range controllers {
		name := cgroup1.Name(strings.TrimPrefix(name, "name="))
		got, gerr := ours(name)
		want, werr := theirs(name)
		if got != want || (gerr == nil) != (werr == nil) {
			t.Errorf("controller %s: ours %q, %v; cgroup1.PidPath %q, %v", name, got, gerr, want, werr)
		}
	}
	if p, err := ours(cgroup1.Memory); err != nil || p != "/"+filepath.Base(dir) {
		t.Errorf("memory group %q, %v; want /%s", p, err, filepath.Base(dir))
	}
	if _, err := ours("no-such-controller"); !errors.Is(err, cgroup1.ErrControllerNotActive) {
		t.Errorf("unknown controller: %v, want ErrControllerNotActive", err)
	}

	cg, err := loadCgroup(pid)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := cg.oomDir(); err != nil || got != dir {
		t.Errorf("oomDir %q, %v; want %q", got, err, dir)
	}
	if _, err := cg.stat(); err != nil {
		t.Errorf("stat: %v", err)
	}
	i := &Init{id: "c1", cg: cg}
	if got, err := i.OOMDir(); err != nil || got != dir {
		t.Errorf("Init.OOMDir %q, %v; want %q", got, err, dir)
	}
	if _, err := (&Init{id: "c1"}).OOMDir(); !errdefs.IsNotFound(err) || !strings.Contains(err.Error(), "c1") {
		t.Errorf("OOMDir without a cgroup: %v, want NotFound naming the container", err)
	}
	if _, err := loadCgroup(1 << 30); err == nil {
		t.Error("loadCgroup of a missing pid succeeded")
	}
}
