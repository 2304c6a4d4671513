//go:build linux

package harness

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// Runtime types under test.
const (
	// RuntimeCustom is ours: containerd resolves it to containerd-shim-custom-v1 on PATH.
	RuntimeCustom = "io.containerd.custom.v1"
	// RuntimeRunc is the reference: containerd-shim-runc-v2, from the same release as the daemon.
	RuntimeRunc = "io.containerd.runc.v2"
)

// Images the tests import into every daemon (built by `make images` with hack/mkimage).
var (
	ImageBusybox = Image{Ref: "localhost/busybox:test", File: "busybox.tar"}
	ImagePause   = Image{Ref: "localhost/pause:test", File: "pause.tar"}
)

// Image is an OCI image tarball in Paths.Images and the name it is imported under.
type Image struct {
	Ref  string
	File string
}

// Paths locates what the harness runs. Defaults follow the Makefile; each can be overridden
// through the environment variable named in its comment.
type Paths struct {
	Repo    string // repository root (found from the working directory)
	Shim    string // CST_SHIM: our shim binary, default <repo>/bin/containerd-shim-custom-v1
	DepsBin string // CST_DEPS_BIN: pinned containerd, ctr, reference shim, runc; default <repo>/_output/deps/bin
	Images  string // CST_IMAGES: image tarballs, default <repo>/tests/testdata/images
	Distro  string // CST_DISTRO_BIN: Debian's containerd 1.6, ctr and runc-v2 shim, default /usr/bin
}

// DefaultPaths resolves Paths from the environment and the repository layout.
func DefaultPaths(t testing.TB) Paths {
	t.Helper()
	repo, err := repoRoot()
	if err != nil {
		t.Fatalf("find repository root: %v", err)
	}
	return Paths{
		Repo:    repo,
		Shim:    envOr("CST_SHIM", filepath.Join(repo, "bin", "containerd-shim-custom-v1")),
		DepsBin: envOr("CST_DEPS_BIN", filepath.Join(repo, "_output", "deps", "bin")),
		Images:  envOr("CST_IMAGES", filepath.Join(repo, "tests", "testdata", "images")),
		Distro:  envOr("CST_DISTRO_BIN", "/usr/bin"),
	}
}

// Runc is the OCI runtime every daemon and shim under test uses (the pinned build).
func (p Paths) Runc() string { return filepath.Join(p.DepsBin, "runc") }

// Criu is the criu that runc runs for checkpoint and restore: the build of `make criu` in
// DepsBin (Debian 12's criu 3.17 fails `criu check` on this machine's kernel), linked first on
// every daemon's PATH; empty if there is none, and runc finds whatever criu is on PATH.
func (p Paths) Criu() string {
	c := filepath.Join(p.DepsBin, "criu")
	if _, err := os.Stat(c); err != nil {
		return ""
	}
	return c
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// InCI reports whether CI=true (or another true value) is set.
func InCI() bool {
	v, _ := strconv.ParseBool(os.Getenv("CI"))
	return v
}

// Require stops t when a prerequisite is missing: in CI it fails (a CI run that skips proves
// nothing), elsewhere it skips with msg, which should say what to install or run.
func Require(t testing.TB, ok bool, format string, args ...any) {
	t.Helper()
	if ok {
		return
	}
	msg := fmt.Sprintf(format, args...)
	if InCI() {
		t.Fatalf("missing prerequisite (CI=true, so this fails instead of skipping): %s", msg)
	}
	t.Skipf("missing prerequisite: %s (with CI=true this fails)", msg)
}

// Executable reports whether path is a regular file with an execute bit.
func Executable(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular() && st.Mode().Perm()&0o111 != 0
}
