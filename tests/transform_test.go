//go:build integration && linux

package tests

// containerd's mount transforms: a rootfs given to the Task API as the erofs
// snapshotter gives it to a runtime that applies the transforms itself (erofs layer images made
// by mkfs.erofs, an ext4 image made by the mkfs transform, a format/mkdir/overlay mount whose
// options hold X-containerd.mkdir.path= entries and {{ mount N }} / {{ overlay A B }} templates).
// containerd 2.4 hands a Create's rootfs to the shim unapplied when it has no mount manager (the
// plugin disabled here): the shim applies them, runs the container, and leaves no mount, loop
// device or state behind, at Delete and after it was SIGKILLed (the delete action).

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"

	"github.com/custom-shim/containerd-shim-custom-v1/tests/harness"
)

// mountManagerPlugin is containerd's mount manager (plugins/mount/manager.go): without it the
// task manager passes a Create's rootfs through as the client gave it
// (core/runtime/v2/task_mounts.go: a nil manager).
const mountManagerPlugin = "io.containerd.mount-manager.v1.bolt"

func init() {
	referenceBugs["containerd-2.4/mount-transforms"] = "containerd-shim-runc-v2 2.4.2 mounts a Create's rootfs " +
		"with mount.All (cmd/containerd-shim-runc-v2/runc/container.go), which applies no transform: a rootfs " +
		"with containerd's mount transforms fails with `internal mount option ... was not consumed by the mount " +
		"manager` (core/mount/mount_linux.go parseMountOptions) whenever the daemon has no mount manager to apply them"
}

// transformLayers are two erofs layer images (mkfs.erofs) of a busybox rootfs: the lower has
// busybox, /etc/layer "one" and /only-lower; the upper /etc/layer "two" and /only-upper.
type transformLayers struct{ dir, upper, lower string }

func buildTransformLayers(t *testing.T) transformLayers {
	t.Helper()
	dir := t.TempDir()
	mk := func(name string, files map[string]string, links []string) string {
		src := filepath.Join(dir, name)
		for path, content := range files {
			p := filepath.Join(src, path)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(content), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		for _, l := range links {
			if err := os.Symlink("busybox", filepath.Join(src, "bin", l)); err != nil {
				t.Fatal(err)
			}
		}
		for _, d := range []string{"proc", "dev", "sys", "run", "tmp"} { // mount points runc needs on a read-only rootfs
			if err := os.MkdirAll(filepath.Join(src, d), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		img := src + ".erofs"
		if out, err := exec.Command("mkfs.erofs", "--quiet", img, src).CombinedOutput(); err != nil {
			t.Fatalf("mkfs.erofs %s: %v: %s", img, err, out)
		}
		return img
	}
	busybox, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatal(err)
	}
	l := transformLayers{dir: dir}
	l.lower = mk("lower", map[string]string{"bin/busybox": string(busybox), "etc/layer": "one\n", "only-lower": "l\n"},
		[]string{"sh", "cat", "echo", "sleep", "test"})
	l.upper = mk("upper", map[string]string{"etc/layer": "two\n", "only-upper": "u\n"}, nil)
	// A writable layer's image made beforehand (a caller's mkfs, not the transform's).
	img := filepath.Join(dir, "formatted.img")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 32<<20); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mkfs.ext4", "-q", img).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4 %s: %v: %s", img, err, out)
	}
	return l
}

// images are the files a loop device of the row's rootfs would be backed by.
func (l transformLayers) images() []string {
	return []string{l.upper, l.lower, filepath.Join(l.dir, "rwlayer.img"), filepath.Join(l.dir, "formatted.img")}
}

func erofsLayer(img string) mount.Mount {
	return mount.Mount{Type: "erofs", Source: img, Options: []string{"ro", "loop"}}
}

// transformShape is a rootfs as the erofs snapshotter emits it (plugins/snapshots/erofs/erofs.go,
// overlayMounts) and what the container must see in it.
type transformShape struct {
	name   string
	mounts func(l transformLayers) []mount.Mount
	want   string // the output of transformProbe
}

// transformProbe prints the layers the container sees and whether its rootfs is writable.
const transformProbe = `cat /etc/layer; test -e /only-upper && echo upper; test -e /only-lower && echo lower; ` +
	`if (echo x > /written) 2>/dev/null; then echo writable; else echo read-only; fi`

var transformShapes = []transformShape{{
	// Block mode (the snapshotter's default_size set).
	name: "block",
	mounts: func(l transformLayers) []mount.Mount {
		return []mount.Mount{{
			Type: "mkfs/ext4", Source: filepath.Join(l.dir, "rwlayer.img"),
			Options: []string{"X-containerd.mkfs.fs=ext4", "X-containerd.mkfs.size=33554432", "rw", "loop"},
		}, erofsLayer(l.upper), erofsLayer(l.lower), {
			Type: "format/mkdir/overlay", Source: "overlay",
			Options: []string{
				"X-containerd.mkdir.path={{ mount 0 }}/upper:0755", "X-containerd.mkdir.path={{ mount 0 }}/work:0755",
				"workdir={{ mount 0 }}/work", "upperdir={{ mount 0 }}/upper", "lowerdir={{ overlay 1 2 }}",
			},
		}}
	},
	want: "two\nupper\nlower\nwritable\n",
}, {
	// The same with the writable image formatted beforehand (an ext4 mount on a loop device, no
	// mkfs): with the reference, the first mount that fails is the overlay, on the mkdir option
	// ("internal mount option … was not consumed by the mount manager").
	name: "block-formatted",
	mounts: func(l transformLayers) []mount.Mount {
		return []mount.Mount{{
			Type: "ext4", Source: filepath.Join(l.dir, "formatted.img"), Options: []string{"rw", "loop"},
		}, erofsLayer(l.upper), erofsLayer(l.lower), {
			Type: "format/mkdir/overlay", Source: "overlay",
			Options: []string{
				"X-containerd.mkdir.path={{ mount 0 }}/upper:0755", "X-containerd.mkdir.path={{ mount 0 }}/work:0755",
				"workdir={{ mount 0 }}/work", "upperdir={{ mount 0 }}/upper", "lowerdir={{ overlay 1 2 }}",
			},
		}}
	},
	want: "two\nupper\nlower\nwritable\n",
}, {
	// Directory mode (the default): the snapshotter's own upper and work directories.
	name: "directory",
	mounts: func(l transformLayers) []mount.Mount {
		return []mount.Mount{erofsLayer(l.upper), erofsLayer(l.lower), {
			Type: "format/mkdir/overlay", Source: "overlay",
			Options: []string{"workdir=" + filepath.Join(l.dir, "work"), "upperdir=" + filepath.Join(l.dir, "upper-dir"),
				"lowerdir={{ overlay 0 1 }}"},
		}}
	},
	want: "two\nupper\nlower\nwritable\n",
}, {
	// A read-only rootfs of one layer: a bind of its mount point.
	name: "view",
	mounts: func(l transformLayers) []mount.Mount {
		return []mount.Mount{erofsLayer(l.lower), {Type: "format/bind", Source: "{{ mount 0 }}", Options: []string{"ro", "rbind"}}}
	},
	want: "one\nlower\nread-only\n",
}}

// TestMountTransforms runs each shape on the reference and on ours through containerd 2.4's
// client (no mount manager), then SIGKILLs our shim with a transformed rootfs mounted.
func TestMountTransforms(t *testing.T) {
	paths := harness.DefaultPaths(t)
	spec := harness.Daemons(paths)[0]
	spec.DisabledPlugins = append(slices.Clone(spec.DisabledPlugins), mountManagerPlugin)
	requireErofs(t)
	harness.Require(t, harness.Executable("/bin/busybox"), "/bin/busybox not found (hack/deps.sh installs busybox-static)")
	harness.Require(t, harness.Executable(paths.Shim), "%s is not built (run `make build`)", paths.Shim)
	d := harness.Start(t, spec, paths)
	c := d.Client(t)
	for _, sh := range transformShapes {
		t.Run(sh.name, func(t *testing.T) {
			outputs := map[string]string{}
			for _, rt := range runtimes {
				t.Run(rt, func(t *testing.T) { outputs[rt] = newTransformRow(t, d, c, rt).run(sh) })
			}
			t.Run("differential", func(t *testing.T) {
				if ref := outputs[harness.RuntimeRunc]; ref != outputs[harness.RuntimeCustom] {
					t.Logf("known reference deviation (%s): the reference observed %q, ours %q",
						referenceBugs[spec.Name+"/mount-transforms"], ref, outputs[harness.RuntimeCustom])
				}
				if outputs[harness.RuntimeCustom] != sh.want {
					t.Errorf("ours observed %q, want %q", outputs[harness.RuntimeCustom], sh.want)
				}
			})
		})
	}
	t.Run("shim-sigkill", func(t *testing.T) { newTransformRow(t, d, c, harness.RuntimeCustom).shimKilled() })
	t.Run("pod-member", func(t *testing.T) { newTransformRow(t, d, c, harness.RuntimeCustom).podMember() })
}

// requireErofs stops t (harness.Require) unless mkfs.erofs and mkfs.ext4 are installed and the
// kernel mounts erofs (the module is loaded first if need be).
func requireErofs(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"mkfs.erofs", "mkfs.ext4"} {
		_, err := exec.LookPath(tool)
		harness.Require(t, err == nil, "%s not found (hack/deps.sh installs erofs-utils; e2fsprogs has mkfs.ext4)", tool)
	}
	_ = exec.Command("modprobe", "erofs").Run()
	fs, _ := os.ReadFile("/proc/filesystems")
	harness.Require(t, strings.Contains(string(fs), "\terofs\n"), "the kernel has no erofs (CONFIG_EROFS_FS)")
}

// transformRow is one shape on one runtime, with layers of its own.
type transformRow struct {
	*harness.Daemon
	t       *testing.T
	ctx     context.Context
	c       *containerd.Client
	runtime string
	layers  transformLayers
	snap    harness.SocketSnapshot
}

func newTransformRow(t *testing.T, d *harness.Daemon, c *containerd.Client, runtime string) *transformRow {
	ctx, cancel := context.WithTimeout(d.Context(context.Background()), 2*time.Minute)
	t.Cleanup(cancel)
	return &transformRow{Daemon: d, t: t, ctx: ctx, c: c, runtime: runtime, layers: buildTransformLayers(t),
		snap: harness.SnapshotSockets()}
}

// container creates a container (no snapshot: its rootfs comes with the task) running args.
func (r *transformRow) container(args ...string) containerd.Container {
	r.t.Helper()
	id := fmt.Sprintf("xf-%s-%s", strings.ReplaceAll(r.t.Name()[strings.LastIndex(r.t.Name(), "/")+1:], ".", "-"), randomHex(3))
	ctr, err := r.c.NewContainer(r.ctx, id, containerd.WithRuntime(r.runtime, nil),
		containerd.WithNewSpec(oci.WithProcessArgs(args...), oci.WithDefaultPathEnv, oci.WithRootFSPath("rootfs")))
	if err != nil {
		r.t.Fatalf("new container %s: %v", id, err)
	}
	r.t.Cleanup(func() { _ = ctr.Delete(context.WithoutCancel(r.ctx)) })
	return ctr
}

// run runs transformProbe on the shape's rootfs and returns its output, or, where Create fails,
// the error; it checks that nothing is left after Delete either way.
func (r *transformRow) run(sh transformShape) string {
	r.t.Helper()
	ctr := r.container("sh", "-c", transformProbe)
	if err := os.MkdirAll(filepath.Join(r.layers.dir, "work"), 0o755); err != nil {
		r.t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(r.layers.dir, "upper-dir"), 0o755); err != nil {
		r.t.Fatal(err)
	}
	var out, stderr bytes.Buffer
	task, err := ctr.NewTask(r.ctx, cio.NewCreator(cio.WithStreams(nil, &out, &stderr)), containerd.WithRootFS(sh.mounts(r.layers)))
	if err != nil {
		defer r.expectNothingLeft(ctr.ID())
		// The reference fails at the first mount mount.All cannot do: an option of a transform
		// (block), a template for a source (view), a transform in the type (directory).
		if r.runtime == harness.RuntimeRunc && strings.Contains(err.Error(), "failed to mount rootfs component") {
			r.t.Logf("known reference bug, not failing the reference row: create: %v", err)
			return "create failed: " + class(err)
		}
		r.t.Fatalf("create the task of %s: %v", ctr.ID(), err)
	}
	ch, err := task.Wait(r.ctx)
	if err != nil {
		r.t.Fatal(err)
	}
	if err := task.Start(r.ctx); err != nil {
		r.t.Fatalf("start %s: %v", ctr.ID(), err)
	}
	st := <-ch
	if code, _, err := st.Result(); err != nil || code != 0 {
		r.t.Errorf("%s exited %d (%v): %q, stderr %q", ctr.ID(), code, err, out.String(), stderr.String())
	}
	if _, err := task.Delete(r.ctx); err != nil {
		r.t.Fatalf("delete the task of %s: %v", ctr.ID(), err)
	}
	r.expectNothingLeft(ctr.ID())
	return out.String()
}

// shimKilled: the block shape's rootfs is mounted (an ext4 image and two layers on loop
// devices); the shim is SIGKILLed; containerd's delete action must unmount all of it and release
// the loop devices.
func (r *transformRow) shimKilled() {
	r.t.Helper()
	rec := subscribe(r.t, r.Daemon, r.c)
	ctr := r.container("sleep", "1000")
	task, err := ctr.NewTask(r.ctx, cio.NullIO, containerd.WithRootFS(transformShapes[0].mounts(r.layers)))
	if err != nil {
		r.t.Fatalf("create the task of %s: %v", ctr.ID(), err)
	}
	if err := task.Start(r.ctx); err != nil {
		r.t.Fatalf("start %s: %v", ctr.ID(), err)
	}
	if loops := loopsBackedBy(r.layers.images()); len(loops) != 3 {
		r.t.Fatalf("loop devices of the running container: %v, want one per image (3)", loops)
	}
	if m := harness.MountsUnder(r.Bundle(ctr.ID())); len(m) < 4 {
		r.t.Fatalf("mounts of the running container under its bundle: %v, want the rootfs and 3 below it", m)
	}
	if err := syscall.Kill(shimOf(r.t, r.Daemon, ctr.ID()), syscall.SIGKILL); err != nil {
		r.t.Fatal(err)
	}
	if n := rec.waitCount(1, eventTimeout, func(e taskEvent) bool { return e.Topic == "/tasks/exit" && e.Container == ctr.ID() }); n != 1 {
		r.t.Fatalf("%d exits of %s after its shim was killed, want 1 (from the delete action)", n, ctr.ID())
	}
	if _, err := task.Delete(r.ctx); err != nil && !errdefs.IsNotFound(err) {
		r.t.Errorf("delete the task after its shim died: %v", err)
	}
	r.expectNothingLeft(ctr.ID())
}

// expectNothingLeft checks, once the task of id is deleted, that nothing is mounted under the
// daemon's state, no loop device is backed by the row's images and the bundle (with the shim's
// mount state in it) is gone; it waits a little, as the kernel releases an autoclear loop device
// once the last user of its file system is gone (the container's mount namespace among them).
func (r *transformRow) expectNothingLeft(id string) {
	r.t.Helper()
	var left []string
	deadline := time.Now().Add(eventTimeout)
	for {
		left = append(harness.MountsUnder(filepath.Join(r.Dir, "state")), loopsBackedBy(r.layers.images())...)
		if _, err := os.Stat(r.Bundle(id)); !errors.Is(err, os.ErrNotExist) {
			left = append(left, "bundle "+r.Bundle(id))
		}
		if len(left) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(left) > 0 {
		r.t.Errorf("left after the task of %s was deleted: %v", id, left)
	}
	if s := harness.StaleSocketsSince(r.snap); len(s) > 0 && r.runtime == harness.RuntimeCustom {
		r.t.Errorf("sockets left: %v", s)
	}
}

// loopsBackedBy lists the loop devices whose backing file is one of files.
func loopsBackedBy(files []string) []string {
	links, _ := filepath.Glob("/sys/block/loop*/loop/backing_file")
	var loops []string
	for _, l := range links {
		b, err := os.ReadFile(l)
		if err == nil && slices.Contains(files, strings.TrimSpace(string(b))) {
			loops = append(loops, strings.Split(l, "/")[3]+" ("+strings.TrimSpace(string(b))+")")
		}
	}
	return loops
}
