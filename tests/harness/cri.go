//go:build linux

package harness

import (
	"context"
	"fmt"
	"hash/fnv"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// CRI runtime handlers registered in every CRI daemon's config (the names a RuntimeClass's
// `handler` would use). Each custom handler has a twin on the reference runtime with the same
// options, so every CRI scenario can run on both.
const (
	HandlerCustom        = "custom"         // io.containerd.custom.v1, no options
	HandlerRunc          = "runc"           // io.containerd.runc.v2, no options
	HandlerCustomWrapped = "custom-wrapped" // BinaryName = the recording runc wrapper (CRI.WrapperLog)
	HandlerRuncWrapped   = "runc-wrapped"
	HandlerCustomSystemd = "custom-systemd" // SystemdCgroup = true
	HandlerRuncSystemd   = "runc-systemd"
	// HandlerCustomSandboxed runs pause-less pods: sandboxer = "shim" makes containerd 2.x's CRI
	// plugin call the shim's Sandbox API instead of starting a pause container (containerd 2.3
	// or later only: 2.0-2.2 crash on it; on 2.4 with disable_pause_image_pull = true).
	HandlerCustomSandboxed = "custom-sandboxed"
)

// CRINamespace is the containerd namespace the CRI plugin keeps everything in.
const CRINamespace = "k8s.io"

// CRITimeout bounds each CRI call made by the helpers.
const CRITimeout = 60 * time.Second

// criHandlers lists handler name → runtime type and options TOML (the body of the handler's
// `options` table).
var criHandlers = []struct{ name, runtime, options string }{
	{HandlerCustom, RuntimeCustom, ""},
	{HandlerRunc, RuntimeRunc, ""},
	{HandlerCustomWrapped, RuntimeCustom, "BinaryName = %q\n"},
	{HandlerRuncWrapped, RuntimeRunc, "BinaryName = %q\n"},
	{HandlerCustomSystemd, RuntimeCustom, "SystemdCgroup = true\n"},
	{HandlerRuncSystemd, RuntimeRunc, "SystemdCgroup = true\n"},
}

// CNIBinDir is where Debian's containernetworking-plugins puts the CNI plugins.
const CNIBinDir = "/usr/lib/cni"

// CNINetwork is the pod network of a CRI daemon: a bridge of its own with a /24 of
// 10.234.0.0/16, both derived from the daemon's dir. Pods asking for NamespaceMode_POD get an
// address on it; host-network pods (NamespaceMode_NODE) never touch it.
type CNINetwork struct {
	Bridge string
	Subnet *net.IPNet
}

// cniNetwork is the network of the daemon in dir.
func cniNetwork(dir string) CNINetwork {
	suffix := strings.TrimPrefix(filepath.Base(dir), "cst-")
	h := fnv.New32a()
	h.Write([]byte(suffix))
	bridge := "cst" + suffix
	if len(bridge) > 15 { // IFNAMSIZ - 1
		bridge = bridge[:15]
	}
	_, subnet, _ := net.ParseCIDR(fmt.Sprintf("10.234.%d.0/24", h.Sum32()%256))
	return CNINetwork{Bridge: bridge, Subnet: subnet}
}

// writeCNIConfig writes the daemon's bridge network (bridge plugin, host-local addresses kept in
// the daemon's dir, no masquerading: nothing leaves the host) into its CNI config dir.
func writeCNIConfig(dir string) error {
	n := cniNetwork(dir)
	conf := fmt.Sprintf(`{
  "cniVersion": "0.4.0",
  "name": "cst-bridge",
  "plugins": [{
    "type": "bridge",
    "bridge": %q,
    "isGateway": true,
    "ipMasq": false,
    "hairpinMode": true,
    "ipam": {"type": "host-local", "ranges": [[{"subnet": %q}]], "dataDir": %q}
  }]
}
`, n.Bridge, n.Subnet.String(), filepath.Join(dir, "cni", "ipam"))
	confDir := filepath.Join(dir, "cni", "net.d")
	if err := os.MkdirAll(confDir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(confDir, "10-cst-bridge.conflist"), []byte(conf), 0o644)
}

// CRIDaemons returns the daemons of Daemons with their CRI plugin enabled: the handlers above,
// restrict_oom_score_adj (containerd here lacks CAP_SYS_RESOURCE), the pause image of the test
// images as sandbox image, the streaming server on 127.0.0.1 (a kernel-chosen port) and a
// private CNI config dir holding the bridge network of cniNetwork, run by Debian's plugins.
func CRIDaemons(p Paths) []DaemonSpec {
	specs := Daemons(p)
	for i := range specs {
		s := &specs[i]
		s.Name += "-cri"
		s.Prepare = writeCNIConfig
		switch s.ConfigVersion {
		case 3:
			// NRI's socket is global (/var/run/nri): keep it off.
			s.DisabledPlugins = []string{"io.containerd.nri.v1.nri"}
			s.ExtraConfig = criConfigV3(true)
		default:
			s.DisabledPlugins = nil
			s.ExtraConfig = criConfigV2
		}
	}
	return specs
}

// WrapperPath is the recording runc wrapper of the *-wrapped handlers in daemon dir dir.
func WrapperPath(dir string) string { return filepath.Join(dir, "wrapper", "runc-recording") }

// handlersTOML renders the runtimes tables under prefix (the plugin's containerd table).
//
// containerd 1.6 (legacyOptions) decodes the options table of a runtime type other than runc
// into runtimeoptions.v1.Options, whose only fields are TypeUrl and ConfigPath: any other key is
// dropped without a word (config_body, the whole table as TOML, came with 1.7). So there the
// custom handlers name a TOML file with ConfigPath, written by StartCRI (optionsFile).
func handlersTOML(prefix, dir string, legacyOptions bool) string {
	var b strings.Builder
	for _, h := range criHandlers {
		fmt.Fprintf(&b, "[%s.runtimes.%s]\n  runtime_type = %q\n", prefix, quoteKey(h.name), h.runtime)
		if h.options == "" {
			continue
		}
		opts := handlerOptions(h.options, dir)
		if legacyOptions && h.runtime != RuntimeRunc {
			opts = fmt.Sprintf("ConfigPath = %q\n", optionsFile(dir, h.name))
		}
		fmt.Fprintf(&b, "[%s.runtimes.%s.options]\n  %s", prefix, quoteKey(h.name), opts)
	}
	return b.String()
}

// handlerOptions is the options TOML of a handler in daemon dir dir.
func handlerOptions(options, dir string) string {
	if strings.Contains(options, "%q") {
		return fmt.Sprintf(options, WrapperPath(dir))
	}
	return options
}

// optionsFile is the runtime options file (ConfigPath) of handler in daemon dir dir.
func optionsFile(dir, handler string) string {
	return filepath.Join(dir, "runtime-options", handler+".toml")
}

// writeOptionsFiles writes the files optionsFile names, for every handler with options.
func writeOptionsFiles(dir string) error {
	for _, h := range criHandlers {
		if h.options == "" {
			continue
		}
		path := optionsFile(dir, h.name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(path, []byte(handlerOptions(h.options, dir)), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func quoteKey(k string) string {
	if strings.ContainsAny(k, "-.") {
		return fmt.Sprintf("%q", k)
	}
	return k
}

// criConfigV3 returns the CRI part of a containerd 2.x config (version 3): the CRI server
// (streaming) in io.containerd.grpc.v1.cri, images in io.containerd.cri.v1.images, runtimes in
// io.containerd.cri.v1.runtime (containerd v2.4.2 internal/cri/config), with the pause-less
// handler; skipPause sets its disable_pause_image_pull (a 2.4 key).
func criConfigV3(skipPause bool) func(dir string) string {
	return func(dir string) string { return criConfigV3Dir(dir, skipPause) }
}

func criConfigV3Dir(dir string, skipPause bool) string {
	rt := criRuntimeV3
	sandboxed := fmt.Sprintf("[%s.containerd.runtimes.%s]\n  runtime_type = %q\n  sandboxer = \"shim\"\n",
		rt, quoteKey(HandlerCustomSandboxed), RuntimeCustom)
	if skipPause {
		sandboxed += "  disable_pause_image_pull = true\n"
	}
	// ExecSync gives up on output still held by a process the exec left behind after this long
	// and deletes the exec to release it (the kubelet's exec probes meet this path).
	return criTableV3(dir, `  drain_exec_sync_io_timeout = "10s"`+"\n",
		handlersTOML(rt+".containerd", dir, false)+"\n"+sandboxed)
}

// criRuntimeV3 and criPluginV2 are the tables of the CRI runtime settings of a version 3 and a
// version 2 config.
const (
	criRuntimeV3 = `plugins."io.containerd.cri.v1.runtime"`
	criPluginV2  = `plugins."io.containerd.grpc.v1.cri"`
)

// criTableV3 is the CRI part of a containerd 2.x config (version 3): the streaming server on
// 127.0.0.1, the test images' pause as sandbox image, restrict_oom_score_adj (containerd here
// lacks CAP_SYS_RESOURCE) and runtimeOpts in the runtime table, the daemon's CNI config dir, runc
// as default handler, and the handlers' tables, runtimes.
func criTableV3(dir, runtimeOpts, runtimes string) string {
	rt := criRuntimeV3
	return fmt.Sprintf(`[plugins."io.containerd.grpc.v1.cri"]
  disable_tcp_service = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"

[plugins."io.containerd.cri.v1.images".pinned_images]
  sandbox = %q

[%s]
  restrict_oom_score_adj = true
%s
[%s.cni]
  conf_dir = %q
  bin_dirs = [%q]

[%s.containerd]
  default_runtime_name = "runc"

%s`, ImagePause.Ref, rt, runtimeOpts, rt, filepath.Join(dir, "cni", "net.d"), CNIBinDir, rt, runtimes)
}

// criConfigV2 is the CRI part of a containerd 1.x config (version 2): one plugin,
// io.containerd.grpc.v1.cri.
func criConfigV2(dir string) string {
	return criTableV2(dir, handlersTOML(criPluginV2+".containerd", dir, true))
}

// criTableV2 is criTableV3 for a containerd 1.x config (version 2).
func criTableV2(dir, runtimes string) string {
	cri := criPluginV2
	return fmt.Sprintf(`[%s]
  disable_tcp_service = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  restrict_oom_score_adj = true
  sandbox_image = %q

[%s.cni]
  conf_dir = %q
  bin_dir = %q

[%s.containerd]
  default_runtime_name = "runc"

%s`, cri, ImagePause.Ref, cri, filepath.Join(dir, "cni", "net.d"), CNIBinDir, cri, runtimes)
}

// CRI is a private containerd with its CRI plugin enabled, and CRI gRPC clients connected to it.
type CRI struct {
	*Daemon
	Runtime runtimeapi.RuntimeServiceClient
	Images  runtimeapi.ImageServiceClient
	// CgroupParent is the cgroup parent of every pod the helpers create ("/cst-<id>"), so the
	// pods' cgroups can be found and checked.
	CgroupParent string
	// LogRoot holds the pods' log directories.
	LogRoot string
	// WrapperLog collects one line per invocation of the recording runc wrapper: its arguments.
	WrapperLog string
	// Network is the bridge network of pods that do not ask for the host's network.
	Network CNINetwork
}

// StartCRI starts a CRI-enabled daemon of spec (one of CRIDaemons), imports the test images
// into the k8s.io namespace and waits until the CRI image service lists them (ConnectCRI). Its
// cleanup (registered after the daemon's teardown, so it runs first) stops and removes every pod
// left, then removes the runtime and cgroup dirs the pods used, and the CNI bridge.
func StartCRI(t *testing.T, spec DaemonSpec, p Paths) *CRI {
	t.Helper()
	if spec.ExtraConfig == nil {
		t.Fatalf("%s: not a CRI daemon spec (use CRIDaemons)", spec.Name)
	}
	for _, plugin := range []string{"bridge", "host-local", "loopback"} {
		Require(t, Executable(filepath.Join(CNIBinDir, plugin)), "CNI plugin %s is missing in %s (run `make deps`: Debian's containernetworking-plugins)", plugin, CNIBinDir)
	}
	d := Start(t, spec, p)
	network := cniNetwork(d.Dir)
	// Registered before ConnectCRI's cleanup, so it runs after the pods are gone.
	t.Cleanup(func() {
		// The bridge plugin creates the bridge and never removes it: it is the test's to remove.
		if exists(filepath.Join("/sys/class/net", network.Bridge)) {
			if out, err := exec.Command("ip", "link", "delete", network.Bridge).CombinedOutput(); err != nil {
				t.Errorf("delete bridge %s: %v: %s", network.Bridge, err, out)
			}
		}
	})
	if err := writeWrapper(d.Dir, p.Runc(), wrapperLog(d)); err != nil {
		t.Fatal(err)
	}
	if err := writeOptionsFiles(d.Dir); err != nil {
		t.Fatal(err)
	}
	c := ConnectCRI(t, d)
	c.Network = network
	return c
}

// wrapperLog is where the recording runc wrapper of daemon d writes (CRI.WrapperLog).
func wrapperLog(d *Daemon) string { return filepath.Join(d.Dir, "wrapper", "calls.log") }

// writeWrapper writes the recording runc wrapper: it appends its arguments to log, then execs runc.
func writeWrapper(dir, runc, log string) error {
	path := WrapperPath(dir)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	script := fmt.Sprintf("#!/bin/sh\necho \"$*\" >> %q\nexec %q \"$@\"\n", log, runc)
	return os.WriteFile(path, []byte(script), 0o755)
}

// CtrNS runs ctr against namespace ns with CtrTimeout and fails t unless it exits 0.
func (c *CRI) CtrNS(t testing.TB, ns string, args ...string) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), CtrTimeout)
	defer cancel()
	r := c.ctrNS(ctx, ns, args...)
	if r.ExitCode != 0 || r.Err != nil {
		t.Fatalf("%s", r)
	}
	return r
}

func (c *CRI) ctrNS(ctx context.Context, ns string, args ...string) Result {
	full := append([]string{"--address", c.Address, "--namespace", ns}, args...)
	cmd := exec.CommandContext(ctx, c.Spec.Ctr, full...)
	cmd.Env = c.Env()
	return runCtr(ctx, cmd, args)
}

// RemoveAllPods stops and removes every pod sandbox (and so its containers) the CRI plugin knows.
func (c *CRI) RemoveAllPods(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*CRITimeout)
	defer cancel()
	pods, err := c.Runtime.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		t.Errorf("list pod sandboxes: %v", err)
		return
	}
	for _, p := range pods.GetItems() {
		if _, err := c.Runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: p.Id}); err != nil {
			t.Errorf("stop pod sandbox %s: %v", p.Id, err)
		}
		if _, err := c.Runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: p.Id}); err != nil {
			t.Errorf("remove pod sandbox %s: %v", p.Id, err)
		}
	}
}

// forceRemoveContainers removes, with ctr, any container left in the k8s.io namespace (after
// RemoveAllPods there should be none: each one is reported).
func (c *CRI) forceRemoveContainers(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*CRITimeout)
	defer cancel()
	for _, id := range strings.Fields(c.ctrNS(ctx, CRINamespace, "containers", "ls", "-q").Stdout) {
		t.Errorf("container %s left in namespace %s after all pods were removed", id, CRINamespace)
		c.ctrNS(ctx, CRINamespace, "tasks", "kill", "-s", "SIGKILL", id)
		c.ctrNS(ctx, CRINamespace, "tasks", "rm", "-f", id)
		c.ctrNS(ctx, CRINamespace, "containers", "rm", id)
	}
}

// CgroupsLeft lists the cgroup dirs left below the pods' cgroup parent, in any hierarchy.
func (c *CRI) CgroupsLeft() []string {
	var left []string
	for _, parent := range CgroupDirs(c.CgroupParent) {
		entries, _ := os.ReadDir(parent)
		for _, e := range entries {
			if e.IsDir() {
				left = append(left, filepath.Join(parent, e.Name()))
			}
		}
	}
	return left
}

// CgroupV2 reports whether /sys/fs/cgroup is the cgroup v2 (unified) hierarchy.
func CgroupV2() bool { return exists("/sys/fs/cgroup/cgroup.controllers") }

// CgroupDirs returns the dirs of cgroup path rel that exist: /sys/fs/cgroup/<controller>/rel in
// every v1 hierarchy, and /sys/fs/cgroup/rel on cgroup v2.
func CgroupDirs(rel string) []string {
	dirs, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", rel))
	if v2 := filepath.Join("/sys/fs/cgroup", rel); CgroupV2() && exists(v2) {
		dirs = append(dirs, v2)
	}
	return dirs
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}
