//go:build linux

package harness

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// DaemonSpec is one containerd release to test against, with the ctr and reference shim shipped
// with it.
type DaemonSpec struct {
	Name          string // subtest name, e.g. "containerd-2.4"
	Containerd    string
	Ctr           string
	RefShim       string // containerd-shim-runc-v2 of the same release
	ConfigVersion int    // 3 for 2.x, 2 for 1.x
	// DisabledPlugins keeps these daemons to the runtime v2 path: the CRI plugins (and NRI, whose
	// socket is global) are not needed by ctr-driven tests.
	DisabledPlugins []string
	// ExtraConfig, if set, returns TOML appended to the config; dir is the daemon's private dir
	// (the CRI variant of cri.go uses it for the CRI plugin's tables).
	ExtraConfig func(dir string) string
	// Prepare, if set, runs once the daemon's private dir exists, before containerd starts
	// (the CRI variant writes its CNI network config there).
	Prepare func(dir string) error
}

// Daemons returns the containerd releases the shim claims to support and the tests cover.
//
// Each daemon gets the reference shim of its own release: containerd-shim-runc-v2 2.4.2 cannot
// run under containerd 1.6 (its pkg/shim rejects the legacy `start` input), and that pairing is
// what a stock installation has.
func Daemons(p Paths) []DaemonSpec {
	return []DaemonSpec{{
		Name:          "containerd-2.4",
		Containerd:    filepath.Join(p.DepsBin, "containerd"),
		Ctr:           filepath.Join(p.DepsBin, "ctr"),
		RefShim:       filepath.Join(p.DepsBin, "containerd-shim-runc-v2"),
		ConfigVersion: 3,
		DisabledPlugins: []string{
			"io.containerd.grpc.v1.cri", "io.containerd.cri.v1.images", "io.containerd.cri.v1.runtime",
			"io.containerd.nri.v1.nri",
		},
	}, {
		Name:            "containerd-1.6",
		Containerd:      filepath.Join(p.Distro, "containerd"),
		Ctr:             filepath.Join(p.Distro, "ctr"),
		RefShim:         filepath.Join(p.Distro, "containerd-shim-runc-v2"),
		ConfigVersion:   2,
		DisabledPlugins: []string{"io.containerd.grpc.v1.cri"},
	}}
}

// Daemon is a running private containerd.
type Daemon struct {
	Spec      DaemonSpec
	Paths     Paths
	Dir       string // private temp dir holding everything below
	Address   string // gRPC socket
	Namespace string // containerd namespace of all containers (unique, so cgroup paths are too)
	FifoDir   string // for ctr --fifo-dir
	Events    *Events

	cmd     *exec.Cmd
	exited  chan struct{} // closed when cmd has been waited for
	exitErr error         // cmd.Wait's result; read after exited is closed
	events  *exec.Cmd
	logPath string
	// movedTTRPC: the daemon listens for ttrpc on <Address>.ttrpc2 (RestartOnNewTTRPC).
	movedTTRPC bool
	sockets    SocketSnapshot // SharedSocketDir when the daemon started
}

// Start starts a private containerd for spec, imports the test images, and registers its
// teardown with t.Cleanup. It stops t (see Require) when a prerequisite is missing.
func Start(t *testing.T, spec DaemonSpec, p Paths) *Daemon {
	t.Helper()
	d := newDaemon(t, spec, p, "`make deps`")
	if err := d.start(); err != nil {
		t.Fatalf("start %s: %v%s", spec.Containerd, err, d.logTail(40))
	}
	if err := d.startEvents(); err != nil {
		t.Fatalf("start ctr events: %v", err)
	}
	for _, img := range []Image{ImageBusybox, ImagePause} {
		d.MustCtr(t, "images", "import", "--all-platforms", filepath.Join(p.Images, img.File))
	}
	listed := d.MustCtr(t, "images", "ls", "-q").Stdout
	for _, img := range []Image{ImageBusybox, ImagePause} {
		if !strings.Contains(listed, img.Ref) {
			t.Fatalf("image %s not listed after import:\n%s", img.Ref, listed)
		}
	}
	t.Logf("%s: %s; shim %s; runc %s; dir %s", spec.Name, firstLine(spec.Containerd, "--version"),
		spec.RefShim, firstLine(p.Runc(), "--version"), d.Dir)
	return d
}

// newDaemon checks what a daemon of spec needs (root, its binaries, the test images), makes its
// private dir and writes its config and bin dir (prepare); the daemon's teardown is registered
// on t. deps says how to get a missing binary.
func newDaemon(t *testing.T, spec DaemonSpec, p Paths, deps string) *Daemon {
	t.Helper()
	Require(t, os.Geteuid() == 0, "integration tests need root")
	for _, bin := range []string{spec.Containerd, spec.Ctr, spec.RefShim, p.Runc()} {
		Require(t, Executable(bin), "%s is missing (run %s)", bin, deps)
	}
	for _, img := range []Image{ImageBusybox, ImagePause} {
		_, err := os.Stat(filepath.Join(p.Images, img.File))
		Require(t, err == nil, "%s is missing (run `make images`)", filepath.Join(p.Images, img.File))
	}
	// A short dir: the socket path must stay under 108 bytes.
	dir, err := os.MkdirTemp("", "cst-") //nolint:usetesting // t.TempDir is longer: socket paths must stay under 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	// Traversable by all, as containerd makes /run/containerd (0711): the OCI runtime resolves a
	// user-namespaced container's rootfs under the state dir as that container's root, a uid of
	// the host's that is not root.
	if err := os.Chmod(dir, 0o711); err != nil {
		t.Fatal(err)
	}
	d := &Daemon{
		Spec:      spec,
		Paths:     p,
		Dir:       dir,
		Address:   filepath.Join(dir, "containerd.sock"),
		Namespace: "cst-" + strings.TrimPrefix(filepath.Base(dir), "cst-"),
		FifoDir:   filepath.Join(dir, "fifo"),
		logPath:   filepath.Join(dir, "containerd.log"),
		sockets:   SnapshotSockets(),
	}
	t.Cleanup(func() { d.teardown(t) })
	if err := d.prepare(); err != nil {
		t.Fatalf("prepare %s: %v", dir, err)
	}
	return d
}

// prepare writes the config and the bin dir that PATH puts first: our shim, the reference shim
// of this release, the pinned runc and criu (Paths.Criu), as symlinks (a shim re-executing
// itself through /proc/self/exe still runs the real binary).
func (d *Daemon) prepare() error {
	bin := filepath.Join(d.Dir, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return err
	}
	links := map[string]string{
		"containerd-shim-custom-v1": d.Paths.Shim,
		"containerd-shim-runc-v2":   d.Spec.RefShim,
		"runc":                      d.Paths.Runc(),
	}
	if c := d.Paths.Criu(); c != "" {
		links["criu"] = c
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(bin, name)); err != nil {
			return err
		}
	}
	if d.Spec.Prepare != nil {
		if err := d.Spec.Prepare(d.Dir); err != nil {
			return err
		}
	}
	return os.WriteFile(filepath.Join(d.Dir, "config.toml"), []byte(d.config()), 0o644)
}

// config is the daemon's whole configuration. `imports = []` matters for 2.x, whose built-in
// default imports /etc/containerd/conf.d/*.toml even when -c names another file.
func (d *Daemon) config() string {
	quoted := make([]string, len(d.Spec.DisabledPlugins))
	for i, p := range d.Spec.DisabledPlugins {
		quoted[i] = fmt.Sprintf("%q", p)
	}
	extra := ""
	if d.Spec.ExtraConfig != nil {
		extra = "\n" + d.Spec.ExtraConfig(d.Dir)
	}
	return fmt.Sprintf(`version = %d
root = %q
state = %q
imports = []
disabled_plugins = [%s]

[grpc]
  address = %q

[ttrpc]
  address = %q

[plugins."io.containerd.internal.v1.opt"]
  path = %q
`, d.Spec.ConfigVersion, filepath.Join(d.Dir, "root"), filepath.Join(d.Dir, "state"),
		strings.Join(quoted, ", "), d.Address, d.ttrpcAddress(), filepath.Join(d.Dir, "opt")) + extra
}

// ttrpcAddress is containerd's ttrpc socket (the shims' TTRPC_ADDRESS, where they publish
// events): <Address>.ttrpc, or <Address>.ttrpc2 after RestartOnNewTTRPC.
func (d *Daemon) ttrpcAddress() string {
	if d.movedTTRPC {
		return d.Address + ".ttrpc2"
	}
	return d.Address + ".ttrpc"
}

// TTRPCAddress is the socket where shims publish their events to the daemon.
func (d *Daemon) TTRPCAddress() string { return d.ttrpcAddress() }

// Env is the environment of the daemon (and so of every shim and runc it starts).
func (d *Daemon) Env() []string {
	return []string{"PATH=" + filepath.Join(d.Dir, "bin") + ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
}

func (d *Daemon) start() error {
	logf, err := os.Create(d.logPath)
	if err != nil {
		return err
	}
	defer logf.Close()
	level := "info"
	if os.Getenv("CST_DEBUG") != "" {
		level = "debug"
	}
	d.cmd = exec.Command(d.Spec.Containerd, "--config", filepath.Join(d.Dir, "config.toml"), "--log-level", level)
	d.cmd.Env = d.Env()
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := d.cmd.Start(); err != nil {
		return err
	}
	d.exited = make(chan struct{})
	go func() {
		d.exitErr = d.cmd.Wait()
		close(d.exited)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		r := d.Ctr(ctx, nil, "version")
		cancel()
		if r.ExitCode == 0 && r.Err == nil {
			return nil
		}
		select {
		case <-d.exited:
			return fmt.Errorf("containerd exited: %v", d.exitErr)
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("containerd not ready after 30s: %s", r)
		}
	}
}

// startEvents starts `ctr events` and returns once it is known to be subscribed.
func (d *Daemon) startEvents() error {
	d.Events = newEvents()
	d.events = exec.Command(d.Spec.Ctr, "--address", d.Address, "events")
	out, err := d.events.StdoutPipe()
	if err != nil {
		return err
	}
	if err := d.events.Start(); err != nil {
		return err
	}
	go d.Events.consume(out)
	// The subscription is live once an event caused after it shows up.
	for i := 0; i < 20; i++ {
		probe := fmt.Sprintf("%s-sync-%d", d.Namespace, i)
		from := d.Events.Len()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		r := d.Ctr(ctx, nil, "namespaces", "create", probe)
		cancel()
		if r.ExitCode != 0 || r.Err != nil {
			return fmt.Errorf("create namespace %s: %s", probe, r)
		}
		_, seen := d.Events.Wait(from, 500*time.Millisecond, func(e Event) bool {
			return e.Topic == "/namespaces/create" && strings.Contains(e.JSON, probe)
		})
		ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
		d.Ctr(ctx, nil, "namespaces", "remove", probe)
		cancel()
		if seen {
			return nil
		}
	}
	return errors.New("no event from ctr events after 20 probes")
}

// Bundle is the task bundle of container id (it exists while the task does).
func (d *Daemon) Bundle(id string) string {
	return filepath.Join(d.Dir, "state", "io.containerd.runtime.v2.task", d.Namespace, id)
}

// ShimAddress returns the address containerd uses for the shim of container id: bootstrap.json
// (written by containerd 2.x) or else the address file (written by the shim, read by 1.x).
func (d *Daemon) ShimAddress(id string) (string, error) {
	bundle := d.Bundle(id)
	if raw, err := os.ReadFile(filepath.Join(bundle, "bootstrap.json")); err == nil {
		var b struct {
			Address string `json:"address"`
		}
		if err := json.Unmarshal(raw, &b); err != nil {
			return "", fmt.Errorf("%s/bootstrap.json: %w", bundle, err)
		}
		return b.Address, nil
	}
	raw, err := os.ReadFile(filepath.Join(bundle, "address"))
	if err != nil {
		return "", fmt.Errorf("neither bootstrap.json nor address in %s: %w", bundle, err)
	}
	return strings.TrimSpace(string(raw)), nil
}

// ShimProcesses returns the running shims of this daemon (their -address names its dir).
func (d *Daemon) ShimProcesses() []Proc { return ProcessesNaming(d.Dir+"/", true) }

// Leaks returns the shim processes, mounts under the state dir and stale shim sockets left
// since snap (taken with SnapshotSockets when the caller's work began).
func (d *Daemon) Leaks(snap SocketSnapshot) Leaks {
	return Leaks{
		Processes: d.ShimProcesses(),
		Mounts:    MountsUnder(filepath.Join(d.Dir, "state")),
		Sockets:   append(StaleSocketsSince(snap), d.shimSocketsInDir()...),
	}
}

// shimSocketsInDir lists sockets in the private dir other than containerd's own.
func (d *Daemon) shimSocketsInDir() []string {
	return socketsUnder(d.Dir, map[string]bool{d.Address: true, d.Address + ".ttrpc": true, d.Address + ".ttrpc2": true})
}

// WaitClean polls Leaks until it is empty or timeout passes (shims exit, and unmount, a little
// after the delete that ends them returns).
func (d *Daemon) WaitClean(snap SocketSnapshot, timeout time.Duration) Leaks {
	deadline := time.Now().Add(timeout)
	for {
		l := d.Leaks(snap)
		if l.Empty() || time.Now().After(deadline) {
			return l
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// teardown removes every task and container left, stops ctr events and containerd, fails t if
// anything outlived them, removes it, and deletes the temp dir (kept with CST_KEEP=1).
func (d *Daemon) teardown(t *testing.T) {
	t.Helper()
	running := d.exited != nil
	if running {
		select {
		case <-d.exited:
			t.Errorf("%s exited during the test: %v", d.Spec.Name, d.exitErr)
			running = false
		default:
			d.RemoveAll(t)
		}
	}
	if d.events != nil && d.events.Process != nil {
		_ = d.events.Process.Kill()
		_ = d.events.Wait()
	}
	if running {
		d.stop(t)
	}
	leaks := d.WaitClean(d.sockets, 5*time.Second)
	leaks.Processes = ProcessesNaming(d.Dir+"/", false) // anything at all still naming the dir
	leaks.Mounts = MountsUnder(d.Dir)
	if !leaks.Empty() {
		t.Errorf("%s left behind after teardown:%s", d.Spec.Name, leaks)
		if err := Reap(leaks); err != nil {
			t.Errorf("reap leftovers: %v", err)
		}
	}
	d.removeRuntimeDirs(t)
	if t.Failed() {
		t.Logf("%s log (%s):%s", d.Spec.Name, d.logPath, d.logTail(80))
	}
	if os.Getenv("CST_KEEP") != "" {
		t.Logf("CST_KEEP set: keeping %s", d.Dir)
		return
	}
	if err := os.RemoveAll(d.Dir); err != nil {
		t.Errorf("remove %s: %v", d.Dir, err)
	}
}

// RemoveAll force-deletes every task and container in the namespace.
func (d *Daemon) RemoveAll(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, id := range strings.Fields(d.Ctr(ctx, nil, "containers", "ls", "-q").Stdout) {
		d.ForceRemove(ctx, id)
	}
	if left := strings.Fields(d.Ctr(ctx, nil, "containers", "ls", "-q").Stdout); len(left) > 0 {
		t.Errorf("containers left after force removal: %v", left)
	}
}

// ForceRemove kills and deletes the task of container id, if any, and the container.
func (d *Daemon) ForceRemove(ctx context.Context, id string) {
	d.Ctr(ctx, nil, "tasks", "kill", "-s", "SIGKILL", id)
	d.Ctr(ctx, nil, "tasks", "rm", "-f", id)
	d.Ctr(ctx, nil, "containers", "rm", id)
}

// stop sends containerd SIGTERM and waits for it to exit (SIGKILL after 15s).
func (d *Daemon) stop(t *testing.T) {
	t.Helper()
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(15 * time.Second):
		t.Errorf("containerd (pid %d) ignored SIGTERM for 15s: killing it", d.cmd.Process.Pid)
		_ = d.cmd.Process.Kill()
		<-d.exited
	}
}

// removeRuntimeDirs removes the per-namespace directories runc leaves behind once every
// container is gone (its state root and the cgroup parents): rmdir only, so a directory that
// still holds a container is reported, not removed.
func (d *Daemon) removeRuntimeDirs(t *testing.T) {
	t.Helper()
	dirs := []string{filepath.Join("/run/containerd/runc", d.Namespace)}
	cgroups, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", d.Namespace))
	dirs = append(dirs, cgroups...)
	dirs = append(dirs, filepath.Join("/sys/fs/cgroup", d.Namespace))
	for _, dir := range dirs {
		if err := syscall.Rmdir(dir); err != nil && !errors.Is(err, syscall.ENOENT) {
			var left []string
			entries, _ := os.ReadDir(dir)
			for _, e := range entries {
				if e.IsDir() {
					left = append(left, e.Name())
				}
			}
			t.Errorf("rmdir %s: %v (a container's state or cgroup is left: %v)", dir, err, left)
		}
	}
}

func (d *Daemon) logTail(n int) string {
	raw, err := os.ReadFile(d.logPath)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(raw), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "\n    " + strings.Join(lines, "\n    ")
}

func firstLine(bin string, args ...string) string {
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		return fmt.Sprintf("(%s: %v)", bin, err)
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return line
}
