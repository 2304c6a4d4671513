//go:build integration && linux

package tests

// The pause-less table's mount-transform row: pod members whose rootfs
// comes from containerd's erofs snapshotter (layers as erofs images, the container's rootfs a
// format/mkdir/overlay mount of {{ overlay }} templates), on a CRI daemon of the row's own with
// the erofs snapshotter as CRI's.
//
// Through CRI the shim never sees the transforms: containerd 2.4's CRI plugin cannot run without
// a mount manager (its image service, pod sandbox controller and restart monitor fail to load:
// "unable to init client for cri image service: failed to get io.containerd.mount-manager.v1"),
// and with one, the task manager applies every transform a runtime does not claim
// (core/runtime/v2/task_mounts.go); neither shim claims any (docs/design.md, "Mount
// transforms"). So this row pins down the path a node takes, the same on the pause path and
// pause-less: the members run on the erofs layers, and nothing (mount, loop device) outlives a
// member's removal, or the pod's shim SIGKILLed. The transforms applied by the shim itself are
// TestMountTransforms's (straight on the Task API, and a member of a pause-less pod created on
// its shim's socket).

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/custom-shim/containerd-shim-custom-v1/tests/harness"
)

// transformCRI starts the row's CRI daemon: the table daemon's spec with the erofs snapshotter
// as CRI's.
func transformCRI(t *testing.T, spec harness.DaemonSpec) *harness.CRI {
	t.Helper()
	spec.Name += "-erofs"
	extra := spec.ExtraConfig
	spec.ExtraConfig = func(dir string) string {
		return extra(dir) + "\n[plugins.\"io.containerd.cri.v1.images\"]\n  snapshotter = \"erofs\"\n"
	}
	return harness.StartCRI(t, spec, harness.DefaultPaths(t))
}

// criMountTransforms: a pod's members on erofs: the rootfs is an overlay of the image's erofs
// layers (on loop devices), writable, and what a member writes is its own; a member's removal,
// and the pod's shim SIGKILLed with a member running, leave no mount and no loop device.
func criMountTransforms(r *criRow) []string {
	requireErofs(r.t)
	x := newCRIRow(r.t, transformCRI(r.t, r.Spec), r.prefix)
	snap := harness.SnapshotSockets()
	x.pauseless, x.noPauseImage = r.pauseless, false // the row's daemon keeps its pause image
	pod, cfg := x.runPod("erofs")
	a := x.run(pod, cfg, containerConfig("a", sleeper...))
	x.note("rootfs: %s", x.rootfsType(a))
	// containerd's erofs mount handler mounts a layer from its file where the kernel can
	// (Linux 6.12), else on a loop device.
	x.note("erofs layers mounted while a runs: %v", len(erofsMountsUnder(x.Dir)) > 0)
	x.mustExecSync(a, 0, "sh", "-c", "echo from-a > /written")
	b := x.run(pod, cfg, containerConfig("b", sleeper...))
	out, err := x.execSync(b, 10, "cat", "/written")
	x.note("b sees a's write: %v; a reads it back: %q", err == nil && out.ExitCode == 0,
		x.mustExecSync(a, 0, "cat", "/written").Stdout)
	x.stop(a, 0)
	x.remove(a)
	x.note("after a's removal: mounts under its bundle: %d", len(harness.MountsUnder(x.Bundle(a))))
	if strings.HasPrefix(r.Spec.Name, "containerd-2.3") {
		// containerd 2.3 runs no delete action for containers joined to a sandbox's shim
		// (criShimKilled): b is stopped instead.
		x.stop(b, 0)
	} else {
		shim := x.shimOf(x.containerPid(b))
		if err := syscall.Kill(shim.Pid, syscall.SIGKILL); err != nil {
			x.t.Fatal(err)
		}
		x.waitProcessGone(shim)
	}
	x.note("b: %s", x.waitState(b, runtimeapi.ContainerState_CONTAINER_EXITED).GetState())
	x.removeKilledPod(pod)
	if x.prefix == harness.HandlerRunc {
		// containerd-shim-runc-v2 2.4.2 leaves the socket of a SIGKILLed grouped shim
		// (referenceBugs "shim-sigkill/socket", criShimKilled): not this row's finding.
		for _, sock := range harness.StaleSocketsSince(snap) {
			x.t.Logf("known reference bug, removed: %s (%s)", sock, referenceBugs["containerd-2.4/shim-sigkill/socket"])
			_ = os.Remove(sock)
		}
	}
	x.waitFor("the pod's mounts and loop devices to be released", func() bool {
		return len(harness.MountsUnder(filepath.Join(x.Dir, "state")))+len(erofsMountsUnder(x.Dir))+len(loopsUnder(x.Dir)) == 0
	})
	x.note("after the pod's removal: no mount and no loop device left")
	return x.notes
}

// rootfsType is the file system type of the rootfs of container id, as its process sees it.
func (r *criRow) rootfsType(id string) string {
	r.t.Helper()
	for _, line := range strings.Split(string(r.mustExecSync(id, 0, "cat", "/proc/mounts").Stdout), "\n") {
		if f := strings.Fields(line); len(f) > 2 && f[1] == "/" {
			return f[2]
		}
	}
	return "none"
}

// erofsMountsUnder lists the erofs mounts whose mount point is below dir.
func erofsMountsUnder(dir string) []string {
	raw, _ := os.ReadFile("/proc/self/mountinfo")
	var out []string
	for _, line := range strings.Split(string(raw), "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		f, g := strings.Fields(pre), strings.Fields(post)
		if ok && len(f) > 4 && len(g) > 0 && g[0] == "erofs" && strings.HasPrefix(f[4], dir+"/") {
			out = append(out, f[4])
		}
	}
	return out
}

// loopsUnder lists the loop devices whose backing file is below dir.
func loopsUnder(dir string) []string {
	links, _ := filepath.Glob("/sys/block/loop*/loop/backing_file")
	var loops []string
	for _, l := range links {
		b, err := os.ReadFile(l)
		if f := strings.TrimSpace(string(b)); err == nil && strings.HasPrefix(f, dir+"/") {
			loops = append(loops, strings.Split(l, "/")[3]+" ("+f+")")
		}
	}
	return loops
}
