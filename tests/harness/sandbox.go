//go:build linux

package harness

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// SandboxSpec is a CRI daemon of the pause-less table (the handler HandlerCustomSandboxed).
type SandboxSpec struct {
	DaemonSpec
	Line string
	// SkipsPauseImage: the line's CRI plugin has disable_pause_image_pull (2.4): pods of the
	// sandboxed handler run without the pause image in the image store. 2.3 makes sure it is there
	// before every RunPodSandbox, whatever the handler.
	SkipsPauseImage bool
}

// SandboxCRIDaemons returns the daemons the pause-less table runs on: the pinned 2.4, and 2.3
// (built by `make compat-deps COMPAT_VERSIONS=2.3`), the oldest line on which a handler with
// sandboxer = "shim" works: 2.0-2.2 have the option, but their sandbox controller hands the
// bundle code a nil spec and containerd panics on the first RunPodSandbox (core/runtime/v2
// NewBundle; fixed in 2.3).
func SandboxCRIDaemons(p Paths) ([]SandboxSpec, error) {
	compat, err := CompatDaemons(p, []string{"2.3", "2.4"})
	if err != nil {
		return nil, err
	}
	var out []SandboxSpec
	for i := len(compat) - 1; i >= 0; i-- { // 2.4 first: the line that matters most
		c := compat[i]
		s := c.DaemonSpec
		s.Name += "-cri"
		s.Prepare = writeCNIConfig
		s.DisabledPlugins = []string{"io.containerd.nri.v1.nri"}
		skip := c.Line == "2.4"
		s.ExtraConfig = criConfigV3(skip)
		out = append(out, SandboxSpec{DaemonSpec: s, Line: c.Line, SkipsPauseImage: skip})
	}
	return out, nil
}

// RemovePauseImage deletes the pause image from the CRI plugin's image store and waits until
// the CRI image service no longer lists it.
func (c *CRI) RemovePauseImage(t testing.TB) {
	t.Helper()
	if !c.HasImage(t, ImagePause.Ref) {
		return
	}
	c.CtrNS(t, CRINamespace, "images", "rm", "--sync", ImagePause.Ref)
	c.waitImage(t, ImagePause.Ref, false)
}

// ImportPauseImage imports the pause image into the CRI plugin's image store, if missing, and
// waits until the CRI image service lists it.
func (c *CRI) ImportPauseImage(t testing.TB) {
	t.Helper()
	if c.HasImage(t, ImagePause.Ref) {
		return
	}
	c.CtrNS(t, CRINamespace, "images", "import", "--all-platforms", filepath.Join(c.Paths.Images, ImagePause.File))
	c.waitImage(t, ImagePause.Ref, true)
}

// HasImage reports whether the CRI image service lists ref.
func (c *CRI) HasImage(t testing.TB, ref string) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), CRITimeout)
	defer cancel()
	st, err := c.Images.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: ref}})
	if err != nil {
		t.Fatalf("ImageStatus %s: %v", ref, err)
	}
	return st.GetImage() != nil
}

func (c *CRI) waitImage(t testing.TB, ref string, present bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for c.HasImage(t, ref) != present {
		if time.Now().After(deadline) {
			t.Fatalf("CRI image service: %s present=%v 30 s after the change", ref, !present)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// HolderName is the process name of a pause-less pod's namespace holder (pod/holder.go).
const HolderName = "pod-holder"

// HoldersOf lists the pids of the namespace holders of the pause-less pods named (the holder's
// argv is its name and its sandbox id): a test judges only the pods it ran, so holders of other
// pods on the machine (another test run, a developer's node) never count.
func HoldersOf(pods []string) []int {
	if len(pods) == 0 {
		return nil
	}
	want := map[string]bool{}
	for _, id := range pods {
		want[id] = true
	}
	var out []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		comm, err := os.ReadFile(filepath.Join("/proc", e.Name(), "comm"))
		if err != nil || strings.TrimSpace(string(comm)) != HolderName {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00"); err == nil && len(args) == 2 && want[args[1]] {
			out = append(out, pid)
		}
	}
	return out
}
