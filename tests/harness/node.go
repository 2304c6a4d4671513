//go:build linux

package harness

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Helpers for the tests of the node installer and of shim upgrades (tests/installer_test.go,
// tests/upgrade_test.go): a daemon that runs on a config file the test wrote, as an operator's
// node does, rather than on the harness's own.

// StartOnConfig starts a private containerd of spec as Start does, but on a config file of the
// test's own. setup runs once the daemon's private dir and bin dir exist and before containerd
// starts; it returns the config file to run on (ConfigWithImports gives the harness's settings
// for this daemon to write one from). The harness's own config.toml is replaced by a link to
// it. setup may fail t.
func StartOnConfig(t *testing.T, spec DaemonSpec, p Paths, setup func(d *Daemon) string) *Daemon {
	t.Helper()
	d := newDaemon(t, spec, p, "`make deps`, or `make compat-deps` for other lines")
	config := setup(d)
	link := filepath.Join(d.Dir, "config.toml")
	if err := os.Remove(link); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(config, link); err != nil {
		t.Fatal(err)
	}
	if err := d.start(); err != nil {
		t.Fatalf("start %s on %s: %v%s", spec.Containerd, config, err, d.logTail(40))
	}
	if err := d.startEvents(); err != nil {
		t.Fatalf("start ctr events: %v", err)
	}
	for _, img := range []Image{ImageBusybox, ImagePause} {
		d.MustCtr(t, "images", "import", "--all-platforms", filepath.Join(p.Images, img.File))
	}
	t.Logf("%s: %s on config %s; dir %s", spec.Name, firstLine(spec.Containerd, "--version"), config, d.Dir)
	return d
}

// ConfigWithImports is the harness's config for this daemon (its root, state, sockets, disabled
// plugins and the spec's ExtraConfig) with imports in place of the harness's `imports = []`.
func (d *Daemon) ConfigWithImports(imports ...string) string {
	quoted := make([]string, len(imports))
	for i, imp := range imports {
		quoted[i] = fmt.Sprintf("%q", imp)
	}
	return strings.Replace(d.config(), "imports = []\n", "imports = ["+strings.Join(quoted, ", ")+"]\n", 1)
}

// ShimBin is the shim's path in the daemon's bin dir, first on containerd's PATH: the harness
// links it to Paths.Shim; the installer and upgrade tests put real files there.
func (d *Daemon) ShimBin() string { return filepath.Join(d.Dir, "bin", "containerd-shim-custom-v1") }

// Log returns what containerd has logged so far.
func (d *Daemon) Log() string {
	b, _ := os.ReadFile(d.logPath)
	return string(b)
}

// NodeCRIConfig is a CRI table for an operator-style config of spec's line (ConfigVersion 3:
// 2.x, else 1.x) with no runtime handler but the default runc: the pause image of the test
// images as sandbox image, restrict_oom_score_adj (containerd here lacks CAP_SYS_RESOURCE), the
// streaming server on 127.0.0.1, and an empty CNI config dir (host-network pods only).
func NodeCRIConfig(spec DaemonSpec) func(dir string) string {
	runc := func(table string) string {
		return fmt.Sprintf("[%s.containerd.runtimes.runc]\n  runtime_type = %q\n", table, RuntimeRunc)
	}
	if spec.ConfigVersion == 3 {
		return func(dir string) string { return criTableV3(dir, "", runc(criRuntimeV3)) }
	}
	return func(dir string) string { return criTableV2(dir, runc(criPluginV2)) }
}

// NodeDaemon is spec with its CRI plugin enabled and NodeCRIConfig as its CRI table.
func NodeDaemon(spec DaemonSpec) DaemonSpec {
	spec.Name += "-node"
	spec.ExtraConfig = NodeCRIConfig(spec)
	spec.DisabledPlugins = []string{"io.containerd.nri.v1.nri"}
	if spec.ConfigVersion != 3 {
		spec.DisabledPlugins = nil
	}
	return spec
}

// ConnectCRI connects CRI clients to d (a daemon with its CRI plugin enabled), imports the test
// images into the k8s.io namespace and waits until the CRI lists them. Its cleanup (registered
// after the daemon's teardown, so it runs first) removes every pod left, then the runtime and
// cgroup dirs the pods used. Pods use CgroupParent "/<namespace>" and LogRoot in d.Dir.
func ConnectCRI(t *testing.T, d *Daemon) *CRI {
	t.Helper()
	c := &CRI{
		Daemon:       d,
		CgroupParent: "/" + d.Namespace,
		LogRoot:      filepath.Join(d.Dir, "pod-logs"),
		WrapperLog:   wrapperLog(d),
	}
	conn, err := grpc.NewClient("unix://"+d.Address, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("connect CRI client to %s: %v", d.Address, err)
	}
	c.Runtime = runtimeapi.NewRuntimeServiceClient(conn)
	c.Images = runtimeapi.NewImageServiceClient(conn)
	runcRootExisted := exists(filepath.Join("/run/containerd/runc", CRINamespace))
	t.Cleanup(func() {
		c.RemoveAllPods(t)
		c.forceRemoveContainers(t)
		_ = conn.Close()
		// The daemon's teardown checks for shims, mounts and sockets; the dirs runc and the
		// cgroup drivers leave are ours to remove (rmdir: a dir still in use is reported).
		dirs := CgroupDirs(c.CgroupParent)
		if !runcRootExisted {
			dirs = append(dirs, filepath.Join("/run/containerd/runc", CRINamespace))
		}
		for _, dir := range dirs {
			if err := syscall.Rmdir(dir); err != nil && !errors.Is(err, syscall.ENOENT) {
				t.Errorf("rmdir %s: %v (a pod's state or cgroup is left)", dir, err)
			}
		}
	})
	for _, img := range []Image{ImageBusybox, ImagePause} {
		c.CtrNS(t, CRINamespace, "images", "import", "--all-platforms", filepath.Join(d.Paths.Images, img.File))
	}
	for _, img := range []Image{ImageBusybox, ImagePause} {
		c.waitImage(t, img.Ref, true)
	}
	return c
}
