//go:build integration && linux

package tests

// TestMountTransforms's pod-member row: members of a pause-less pod whose rootfs has containerd's
// mount transforms, created straight on the pod's shim (as a caller that drives the Sandbox
// and Task services itself does).

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs/pkg/errgrpc"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/custom-shim/containerd-shim-custom-v1/tests/harness"
)

// podMember: members of a pause-less pod created straight on its shim's Task API (as the issue's
// conformance run drives it) with the block shape's rootfs: one runs to its exit and is deleted,
// the other runs when the shim is SIGKILLed and the delete action (run here as containerd runs
// it, which does not know these tasks) takes its rootfs down. Neither leaves a mount, a loop
// device or mount state.
func (r *transformRow) podMember() {
	r.t.Helper()
	sb := newSBRow(r.t, r.Daemon, r.c)
	pod := "xfpod-" + randomHex(4)
	holder := sb.run(pod, "")
	addr := sb.address(pod)
	_, task := sb.shim(pod)
	out := filepath.Join(r.layers.dir, "member.out")
	a := r.member(pod, holder, "a", "sh", "-c", transformProbe+"; cat /etc/hostname")
	r.createMember(task, a, "file://"+out)
	if _, err := task.Start(r.ctx, &taskAPI.StartRequest{ID: a.id}); err != nil {
		r.t.Fatalf("start member %s: %v", a.id, err)
	}
	if st, err := task.Wait(r.ctx, &taskAPI.WaitRequest{ID: a.id}); err != nil || st.ExitStatus != 0 {
		r.t.Errorf("member %s: wait %v, exit %d", a.id, err, st.GetExitStatus())
	}
	if _, err := task.Delete(r.ctx, &taskAPI.DeleteRequest{ID: a.id}); err != nil {
		r.t.Fatalf("delete member %s: %v", a.id, err)
	}
	if got, err := os.ReadFile(out); err != nil || string(got) != transformShapes[0].want+"sb-"+pod+"\n" {
		r.t.Errorf("member %s wrote %q (%v), want the probe's %q and the pod's hostname", a.id, got, err, transformShapes[0].want)
	}
	r.expectMemberGone(a)

	b := r.member(pod, holder, "b", "sleep", "1000")
	// b's layers and writable image of its own: a's are released, b's must be too.
	r.layers = buildTransformLayers(r.t)
	r.createMember(task, b, "")
	if _, err := task.Start(r.ctx, &taskAPI.StartRequest{ID: b.id}); err != nil {
		r.t.Fatalf("start member %s: %v", b.id, err)
	}
	if loops := loopsBackedBy(r.layers.images()); len(loops) != 3 {
		r.t.Fatalf("loop devices of member %s: %v, want 3", b.id, loops)
	}
	shim := sb.shimPid(pod)
	if err := syscall.Kill(shim, syscall.SIGKILL); err != nil {
		r.t.Fatal(err)
	}
	sb.waitGone(shim)
	cmd := exec.Command(r.Paths.Shim, "-namespace", r.Namespace, "-address", r.Address, "-publish-binary", r.Spec.Containerd,
		"-id", b.id, "-bundle", b.bundle, "delete")
	cmd.Dir, cmd.Env = b.bundle, r.Env()
	if res, err := cmd.Output(); err != nil || len(res) == 0 {
		r.t.Errorf("delete action for member %s: %v (%d bytes of response)", b.id, err, len(res))
	}
	r.expectMemberGone(b)
	sb.removeFromContainerd(pod)
	sb.expectNothingLeft(pod, addr, "")
}

// podMemberSpec is a member container of a pause-less pod: its bundle and id.
type podMemberSpec struct{ id, bundle string }

// member writes the bundle of a member of pod (whose holder is holder) running args: it joins
// the pod's IPC and UTS namespaces and carries the sandbox-id annotation, as CRI makes a member.
func (r *transformRow) member(pod string, holder int, name string, args ...string) podMemberSpec {
	r.t.Helper()
	m := podMemberSpec{id: pod + "-" + name, bundle: filepath.Join(r.t.TempDir(), "bundle")}
	if err := os.Mkdir(m.bundle, 0o711); err != nil {
		r.t.Fatal(err)
	}
	spec, err := oci.GenerateSpec(r.ctx, nil, &containers.Container{ID: m.id},
		oci.WithProcessArgs(args...), oci.WithDefaultPathEnv, oci.WithRootFSPath("rootfs"),
		oci.WithHostNamespace(specs.NetworkNamespace),
		oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.IPCNamespace, Path: fmt.Sprintf("/proc/%d/ns/ipc", holder)}),
		oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.UTSNamespace, Path: fmt.Sprintf("/proc/%d/ns/uts", holder)}),
		oci.WithAnnotations(map[string]string{"io.kubernetes.cri.sandbox-id": pod}))
	if err != nil {
		r.t.Fatal(err)
	}
	raw, err := json.Marshal(spec)
	if err != nil {
		r.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(m.bundle, "config.json"), raw, 0o600); err != nil {
		r.t.Fatal(err)
	}
	return m
}

// createMember creates member m on the pod's shim with the block shape's rootfs.
func (r *transformRow) createMember(task taskAPI.TTRPCTaskService, m podMemberSpec, stdout string) {
	r.t.Helper()
	_, err := task.Create(r.ctx, &taskAPI.CreateTaskRequest{ID: m.id, Bundle: m.bundle, Stdout: stdout,
		Rootfs: mount.ToProto(transformShapes[0].mounts(r.layers))})
	if err != nil {
		r.t.Fatalf("create member %s on the pod's shim: %v", m.id, errgrpc.ToNative(err))
	}
}

// expectMemberGone checks that nothing of member m's rootfs is left: no mount under its bundle,
// no loop device of the row's images, no mount state.
func (r *transformRow) expectMemberGone(m podMemberSpec) {
	r.t.Helper()
	var left []string
	for deadline := time.Now().Add(eventTimeout); ; time.Sleep(50 * time.Millisecond) {
		left = append(harness.MountsUnder(m.bundle), loopsBackedBy(r.layers.images())...)
		if _, err := os.Stat(filepath.Join(m.bundle, "rootfs-mounts")); err == nil {
			left = append(left, "rootfs-mounts in the bundle")
		}
		if len(left) == 0 || time.Now().After(deadline) {
			break
		}
	}
	if len(left) > 0 {
		r.t.Errorf("left of member %s: %v", m.id, left)
	}
}
