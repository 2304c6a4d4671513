//go:build linux

package rootfs

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/errdefs"
)

func TestHasTransforms(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mounts []mount.Mount
		want   bool
	}{
		{"none", nil, false},
		{"overlay", []mount.Mount{{Type: "overlay", Source: "overlay"}}, false},
		{"bind and erofs", []mount.Mount{{Type: "erofs", Options: []string{"ro", "loop"}}, {Type: "bind"}}, false},
		{"erofs snapshotter", []mount.Mount{{Type: "erofs"}, {Type: "format/mkdir/overlay"}}, true},
		{"format/bind", []mount.Mount{{Type: "erofs"}, {Type: "format/bind"}}, true},
		{"mkfs", []mount.Mount{{Type: "mkfs/ext4"}}, true},
		{"mkdir", []mount.Mount{{Type: "mkdir/bind"}}, true},
		// The manager stops at a transform it does not know: nothing for it to do.
		{"unknown transform", []mount.Mount{{Type: "fuse3/overlay"}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := HasTransforms(tc.mounts); got != tc.want {
				t.Errorf("HasTransforms = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestMkfsRoots(t *testing.T) {
	mounts := []mount.Mount{
		{Type: "mkfs/ext4", Source: "/var/lib/snap/snapshots/7/rwlayer.img"},
		{Type: "erofs", Source: "/var/lib/snap/snapshots/3/layer.erofs"},
		{Type: "mkfs/xfs", Source: "/var/lib/snap/snapshots/7/other.img"},
		{Type: "mkfs/ext4", Source: "relative.img"},
		{Type: "format/mkdir/overlay", Source: "overlay"},
	}
	want := []string{"/var/lib/snap/snapshots/7"}
	if got := mkfsRoots(mounts); !reflect.DeepEqual(got, want) {
		t.Errorf("mkfsRoots = %q, want %q", got, want)
	}
}

// A transform that fails is InvalidArgument naming the container, never the NotImplemented the
// mount manager's mkdir answers for a directory outside its roots (containerd's task manager
// takes NotImplemented from Create for an older Task API and retries), and leaves no state.
func TestMountTransformErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mounts []mount.Mount
		want   string
	}{
		{"mkdir outside the roots", []mount.Mount{{Type: "format/mkdir/overlay", Source: "overlay",
			Options: []string{"X-containerd.mkdir.path=/nonexistent/upper:0755", "lowerdir=/a:/b"}}},
			"no root"},
		{"template out of range", []mount.Mount{{Type: "format/bind", Source: "{{ mount 3 }}", Options: []string{"ro", "rbind"}}},
			"index out of bounds"},
		{"bad mkdir option", []mount.Mount{{Type: "mkdir/bind", Source: "/x", Options: []string{"X-containerd.mkdir.dir=/x"}}},
			"invalid mkdir option"},
		{"mkfs without a size", []mount.Mount{{Type: "mkfs/ext4", Source: "/nonexistent/rw.img", Options: []string{"X-containerd.mkfs.fs=ext4"}}},
			"open mount manager"}, // its root does not exist
	} {
		t.Run(tc.name, func(t *testing.T) {
			bundle := t.TempDir()
			err := Mount(context.Background(), "c1", bundle, tc.mounts)
			if !errdefs.IsInvalidArgument(err) || errdefs.IsNotImplemented(err) {
				t.Fatalf("Mount: %v, want InvalidArgument only", err)
			}
			if !strings.Contains(err.Error(), "container c1") || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Mount: %v, want the container and %q named", err, tc.want)
			}
			if _, err := os.Stat(filepath.Join(bundle, StateDir)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s left after a failed Mount (%v)", StateDir, err)
			}
		})
	}
}

// Unmount of a bundle never mounted (or already unmounted) is nothing to do.
func TestUnmountNothing(t *testing.T) {
	bundle := t.TempDir()
	if err := Unmount(context.Background(), "c1", bundle, 0); err != nil {
		t.Fatalf("Unmount of a bare bundle: %v", err)
	}
	if err := os.Mkdir(filepath.Join(bundle, Dir), 0o711); err != nil {
		t.Fatal(err)
	}
	if err := Unmount(context.Background(), "c1", bundle, 0); err != nil {
		t.Fatalf("Unmount of an empty rootfs: %v", err)
	}
}

// No mounts (a rootfs the client prepared) is nothing to do: not even the rootfs directory.
func TestMountNothing(t *testing.T) {
	bundle := t.TempDir()
	if err := Mount(context.Background(), "c1", bundle, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(bundle, Dir)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("rootfs dir made for no mounts (%v)", err)
	}
}
