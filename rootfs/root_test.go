//go:build linux

package rootfs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/errdefs"
	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"

	"github.com/custom-shim/containerd-shim-custom-v1/internal/shimtest"
)

// requireRootAndTools gates tests that need root (shimtest.RequireRoot) and the tools they
// use (mkfs.erofs from erofs-utils, mkfs.ext4) and erofs in the kernel: missing, those fail with
// CI=true and skip otherwise.
func requireRootAndTools(t *testing.T) {
	t.Helper()
	shimtest.RequireRoot(t)
	for _, tool := range []string{"mkfs.erofs", "mkfs.ext4"} {
		if _, err := exec.LookPath(tool); err != nil {
			shimtest.Prerequisite(t, "%s not found (hack/deps.sh installs erofs-utils and e2fsprogs)", tool)
		}
	}
	fs, _ := os.ReadFile("/proc/filesystems")
	if !strings.Contains(string(fs), "\terofs\n") {
		// The module may be there, not loaded yet: a mount loads it. mkfs in erofsLayers fails
		// clearly enough if it is not.
		_ = exec.Command("modprobe", "erofs").Run()
	}
}

// layers builds two erofs layer images with mkfs.erofs, as containerd's erofs snapshotter keeps
// them: lower has /etc/layer "one" and /only-lower, upper has /etc/layer "two" and /only-upper.
// It returns their paths, top first (the order of the snapshotter's mounts).
func erofsLayers(t *testing.T, dir string) (upper, lower string) {
	t.Helper()
	build := func(name string, files map[string]string) string {
		src := filepath.Join(dir, name)
		for path, content := range files {
			p := filepath.Join(src, path)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		img := src + ".erofs"
		if out, err := exec.Command("mkfs.erofs", "--quiet", img, src).CombinedOutput(); err != nil {
			t.Fatalf("mkfs.erofs %s: %v: %s", img, err, out)
		}
		return img
	}
	lower = build("lower", map[string]string{"etc/layer": "one", "only-lower": "l"})
	upper = build("upper", map[string]string{"etc/layer": "two", "only-upper": "u"})
	return upper, lower
}

// shape is a rootfs as containerd's erofs snapshotter gives it (plugins/snapshots/erofs,
// overlayMounts and mounts) to a runtime that applies the transforms itself.
type shape struct {
	name     string
	mounts   func(dir, upper, lower string) []mount.Mount
	writable bool
	layers   int // 2: both layers visible; 1: the lower only
}

func blockImage(dir string) mount.Mount {
	return mount.Mount{Type: "mkfs/ext4", Source: filepath.Join(dir, "rwlayer.img"),
		Options: []string{"X-containerd.mkfs.fs=ext4", "X-containerd.mkfs.size=16777216", "rw", "loop"}}
}

func erofsMount(img string) mount.Mount {
	return mount.Mount{Type: "erofs", Source: img, Options: []string{"ro", "loop"}}
}

var shapes = []shape{{
	// Block mode (default_size set): a writable ext4 image made by mkfs, its upper and work
	// directories made by mkdir, the layers by {{ overlay }}: the shape of a node whose erofs snapshotter has default_size set.
	name: "block", writable: true, layers: 2,
	mounts: func(dir, upper, lower string) []mount.Mount {
		return []mount.Mount{blockImage(dir), erofsMount(upper), erofsMount(lower), {
			Type: "format/mkdir/overlay", Source: "overlay",
			Options: []string{
				"X-containerd.mkdir.path={{ mount 0 }}/upper:0755",
				"X-containerd.mkdir.path={{ mount 0 }}/work:0755",
				"workdir={{ mount 0 }}/work", "upperdir={{ mount 0 }}/upper",
				"lowerdir={{ overlay 1 2 }}",
			},
		}}
	},
}, {
	// Directory mode (the default): upper and work directories of the snapshotter's.
	name: "directory", writable: true, layers: 2,
	mounts: func(dir, upper, lower string) []mount.Mount {
		for _, d := range []string{"upper", "work"} {
			if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil && !errors.Is(err, os.ErrExist) {
				panic(err)
			}
		}
		return []mount.Mount{erofsMount(upper), erofsMount(lower), {
			Type: "format/mkdir/overlay", Source: "overlay",
			Options: []string{"workdir=" + filepath.Join(dir, "work"), "upperdir=" + filepath.Join(dir, "upper"),
				"lowerdir={{ overlay 0 1 }}"},
		}}
	},
}, {
	// A read-only view of one layer: a bind of its mount point.
	name: "view", layers: 1,
	mounts: func(_, _, lower string) []mount.Mount {
		return []mount.Mount{erofsMount(lower), {Type: "format/bind", Source: "{{ mount 0 }}", Options: []string{"ro", "rbind"}}}
	},
}, {
	// Block mode, no parent: the writable image's upper directory, bound.
	name: "block-no-parent", writable: true,
	mounts: func(dir, _, _ string) []mount.Mount {
		return []mount.Mount{blockImage(dir), {Type: "format/mkdir/bind", Source: "{{ mount 0 }}/upper",
			Options: []string{"X-containerd.mkdir.path={{ mount 0 }}/upper:0755", "rw", "rbind"}}}
	},
}}

// Each shape mounts with its layers in order and writes where it is writable; Unmount leaves no
// mount, no loop device and no state; mounted again, a writable layer still has what was written.
func TestMountShapes(t *testing.T) {
	requireRootAndTools(t)
	for _, sh := range shapes {
		t.Run(sh.name, func(t *testing.T) {
			dir := t.TempDir()
			upper, lower := erofsLayers(t, dir)
			bundle := filepath.Join(dir, "bundle")
			if err := os.Mkdir(bundle, 0o700); err != nil {
				t.Fatal(err)
			}
			images := []string{upper, lower, filepath.Join(dir, "rwlayer.img")}
			ctx := context.Background()
			for round := range 2 {
				mounts := sh.mounts(dir, upper, lower)
				if err := Mount(ctx, "c1", bundle, mounts); err != nil {
					t.Fatalf("round %d: Mount: %v", round, err)
				}
				checkLayers(t, bundle, sh.layers)
				checkWrite(t, bundle, sh.writable, round)
				if err := Unmount(ctx, "c1", bundle, unix.MNT_DETACH); err != nil {
					t.Fatalf("round %d: Unmount: %v", round, err)
				}
				expectNothingLeft(t, bundle, images)
			}
		})
	}
}

// After a crash the state in the bundle is all there is: an Unmount of a fresh process (here, with
// the database lost too, as if the shim died between a mount and its record) still unmounts
// everything and releases the loop devices.
func TestUnmountLostRecord(t *testing.T) {
	requireRootAndTools(t)
	dir := t.TempDir()
	upper, lower := erofsLayers(t, dir)
	bundle := filepath.Join(dir, "bundle")
	if err := os.Mkdir(bundle, 0o700); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := Mount(ctx, "c1", bundle, shapes[0].mounts(dir, upper, lower)); err != nil {
		t.Fatal(err)
	}
	if n := len(loopsOf(t, upper, lower)); n != 2 {
		t.Fatalf("%d loop devices for the layers while mounted, want 2", n)
	}
	if err := os.Remove(filepath.Join(bundle, StateDir, dbFile)); err != nil {
		t.Fatal(err)
	}
	if err := Unmount(ctx, "c1", bundle, 0); err != nil {
		t.Fatalf("Unmount: %v", err)
	}
	expectNothingLeft(t, bundle, []string{upper, lower, filepath.Join(dir, "rwlayer.img")})
}

// A rootfs that fails half way (the overlay names a layer there is none of) leaves nothing
// mounted, no loop device and no state, and is InvalidArgument naming the container.
func TestMountFailureLeavesNothing(t *testing.T) {
	requireRootAndTools(t)
	dir := t.TempDir()
	upper, lower := erofsLayers(t, dir)
	bundle := filepath.Join(dir, "bundle")
	if err := os.Mkdir(bundle, 0o700); err != nil {
		t.Fatal(err)
	}
	for name, last := range map[string]mount.Mount{
		"template": {Type: "format/mkdir/overlay", Source: "overlay", Options: []string{"lowerdir={{ overlay 1 5 }}"}},
		"overlay":  {Type: "format/overlay", Source: "overlay", Options: []string{"lowerdir={{ mount 1 }}/missing:{{ mount 2 }}"}},
	} {
		t.Run(name, func(t *testing.T) {
			mounts := []mount.Mount{blockImage(dir), erofsMount(upper), erofsMount(lower), last}
			err := Mount(context.Background(), "c1", bundle, mounts)
			if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "container c1") {
				t.Fatalf("Mount: %v, want InvalidArgument naming the container", err)
			}
			expectNothingLeft(t, bundle, []string{upper, lower, filepath.Join(dir, "rwlayer.img")})
		})
	}
}

func checkLayers(t *testing.T, bundle string, layers int) {
	t.Helper()
	root := filepath.Join(bundle, Dir)
	want := map[int]map[string]string{
		0: {},
		1: {"etc/layer": "one", "only-lower": "l"},
		2: {"etc/layer": "two", "only-lower": "l", "only-upper": "u"},
	}[layers]
	for path, content := range want {
		got, err := os.ReadFile(filepath.Join(root, path))
		if err != nil || string(got) != content {
			t.Errorf("rootfs %s: %q (%v), want %q", path, got, err, content)
		}
	}
	if layers < 2 {
		if _, err := os.Stat(filepath.Join(root, "only-upper")); err == nil {
			t.Errorf("rootfs has the upper layer's file with %d layer(s)", layers)
		}
	}
}

// checkWrite writes a file in round 0 and finds it in round 1 where the rootfs is writable, and
// finds a write refused where it is not.
func checkWrite(t *testing.T, bundle string, writable bool, round int) {
	t.Helper()
	path := filepath.Join(bundle, Dir, "written")
	if !writable {
		if err := os.WriteFile(path, []byte("x"), 0o644); !errors.Is(err, unix.EROFS) {
			t.Errorf("write to a read-only rootfs: %v, want EROFS", err)
		}
		return
	}
	if round == 0 {
		if err := os.WriteFile(path, []byte("kept"), 0o644); err != nil {
			t.Fatalf("write to the rootfs: %v", err)
		}
		return
	}
	if got, err := os.ReadFile(path); err != nil || string(got) != "kept" {
		t.Errorf("mounted again, the writable layer has %q (%v), want what was written", got, err)
	}
}

// expectNothingLeft checks that nothing is mounted under bundle, that no loop device is backed
// by any of images (a released loop device may take a moment: the kernel clears an autoclear
// device when its last user is gone), and that the mount manager's state is gone.
func expectNothingLeft(t *testing.T, bundle string, images []string) {
	t.Helper()
	if m, err := mountinfo.GetMounts(mountinfo.PrefixFilter(bundle)); err != nil || len(m) > 0 {
		for _, mi := range m {
			t.Errorf("left mounted: %s (%s)", mi.Mountpoint, mi.FSType)
		}
		if err != nil {
			t.Error(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for loops := loopsOf(t, images...); len(loops) > 0; loops = loopsOf(t, images...) {
		if time.Now().After(deadline) {
			t.Errorf("loop devices left: %v", loops)
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := os.Stat(filepath.Join(bundle, StateDir)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s left (%v)", StateDir, err)
	}
}

// loopsOf lists the loop devices whose backing file is one of images.
func loopsOf(t *testing.T, images ...string) []string {
	t.Helper()
	files, err := filepath.Glob("/sys/block/loop*/loop/backing_file")
	if err != nil {
		t.Fatal(err)
	}
	var loops []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // detached meanwhile
		}
		if slices.Contains(images, strings.TrimSpace(string(b))) {
			loops = append(loops, fmt.Sprintf("%s (%s)", strings.Split(f, "/")[3], strings.TrimSpace(string(b))))
		}
	}
	return loops
}
