//go:build linux

package pod

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/pkg/sys/reaper"
	"golang.org/x/sys/unix"

	"github.com/custom-shim/containerd-shim-custom-v1/internal/shimtest"
)

// newNetns creates a named network namespace (ip netns add) for the test and returns its path.
func newNetns(t *testing.T) string {
	t.Helper()
	name := fmt.Sprintf("pod-test-%d-%d", os.Getpid(), time.Now().UnixNano()%1e6)
	mustRun(t, "ip", "netns", "add", name)
	t.Cleanup(func() { run(t, "ip", "netns", "delete", name) })
	return "/run/netns/" + name
}

// nsIno returns the inode of a namespace file (a /proc/<pid>/ns/* link or a bind mount of one).
func nsIno(t *testing.T, path string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

func nsPath(pid int, ns string) string { return fmt.Sprintf("/proc/%d/ns/%s", pid, ns) }

// isMountPoint reports whether something is mounted at path, and with which options, as
// /proc/self/mountinfo says.
func mountOf(t *testing.T, path string) (fstype, opts string, ok bool) {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 10 || f[4] != path {
			continue
		}
		i := 6
		for f[i] != "-" {
			i++
		}
		fstype, opts, ok = f[i+1], f[5]+","+f[i+3], true
	}
	return fstype, opts, ok
}

// threadsInHostNamespaces checks that no thread of the test process is left in another
// namespace: the holder's spawning thread ended with its goroutine.
func threadsInHostNamespaces(t *testing.T, host map[string]uint64) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		bad := ""
		tasks, _ := os.ReadDir("/proc/self/task")
		for _, task := range tasks {
			for ns, ino := range host {
				var st unix.Stat_t
				if unix.Stat(filepath.Join("/proc/self/task", task.Name(), "ns", ns), &st) == nil && st.Ino != ino {
					bad = fmt.Sprintf("thread %s in another %s namespace", task.Name(), ns)
				}
			}
		}
		if bad == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(bad)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func hostNamespaces(t *testing.T) map[string]uint64 {
	t.Helper()
	m := map[string]uint64{}
	for _, ns := range []string{"net", "ipc", "uts", "pid"} {
		m[ns] = nsIno(t, "/proc/self/ns/"+ns)
	}
	return m
}

// A pod with its own IPC, UTS and PID namespaces and a netns of the test's: the holder is in
// them (and PID 1 of the PID namespace), the hostname and sysctls are set inside and not on the
// host, the shm is a tmpfs as podsandbox mounts it, an orphan of the pod is reaped by the
// holder, Stop ends the holder and unmounts shm, Release leaves nothing.
func TestPodNamespaces(t *testing.T) {
	shimtest.RequireRoot(t)
	ctx := t.Context()
	netns := newNetns(t)
	host := hostNamespaces(t)
	hostName, _ := os.Hostname()
	hostShmmni := readTrim(t, "/proc/sys/kernel/shmmni")
	hostPorts := readTrim(t, "/proc/sys/net/ipv4/ip_unprivileged_port_start")

	bundle := t.TempDir()
	p := newPod(t, Options{ID: "ns-pod", Bundle: bundle, NetNSPath: netns, Config: &Config{
		Hostname: "pod-host", PID: ModePod,
		Sysctls: map[string]string{"net.ipv4.ip_unprivileged_port_start": "80", "kernel.shmmni": "1234"},
	}})
	fstype, opts, ok := mountOf(t, filepath.Join(bundle, shmDir))
	if !ok || fstype != "tmpfs" || !hasAll(opts, "nosuid", "nodev", "noexec", "size=65536k") {
		t.Fatalf("shm: %v %q %q", ok, fstype, opts)
	}
	if fi, err := os.Stat(filepath.Join(bundle, shmDir)); err != nil || fi.Mode() != os.ModeDir|os.ModeSticky|0o777 {
		t.Fatalf("shm mode: %v %v", fi.Mode(), err) // mountinfo omits tmpfs's default mode=1777
	}
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	h := p.Status().Pid
	threadsInHostNamespaces(t, host)

	for _, ns := range []string{"ipc", "uts", "pid"} {
		if nsIno(t, nsPath(h, ns)) == host[ns] {
			t.Errorf("holder in the host's %s namespace", ns)
		}
	}
	if nsIno(t, nsPath(h, "net")) != nsIno(t, netns) {
		t.Error("holder not in the pod's netns")
	}
	if nspid := statusLine(t, h, "NSpid"); nspid != fmt.Sprintf("%d\t1", h) {
		t.Errorf("NSpid %q, want PID 1 in the pod's namespace", nspid)
	}
	if got := strings.TrimSpace(mustRun(t, "nsenter", "-u", "-t", strconv.Itoa(h), "hostname")); got != "pod-host" {
		t.Errorf("hostname inside %q", got)
	}
	if got := strings.TrimSpace(mustRun(t, "nsenter", "-n", "-t", strconv.Itoa(h), "cat", "/proc/sys/net/ipv4/ip_unprivileged_port_start")); got != "80" {
		t.Errorf("net sysctl inside %q", got)
	}
	if got := strings.TrimSpace(mustRun(t, "nsenter", "-i", "-t", strconv.Itoa(h), "cat", "/proc/sys/kernel/shmmni")); got != "1234" {
		t.Errorf("ipc sysctl inside %q", got)
	}
	if n, _ := os.Hostname(); n != hostName || readTrim(t, "/proc/sys/kernel/shmmni") != hostShmmni ||
		readTrim(t, "/proc/sys/net/ipv4/ip_unprivileged_port_start") != hostPorts {
		t.Fatal("the host's hostname or sysctls changed")
	}

	orphanReaped(t, h)

	ipcIno := nsIno(t, nsPath(h, "ipc"))
	if err := p.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := unix.Kill(h, 0); !errors.Is(err, unix.ESRCH) {
		t.Fatalf("holder still there: %v", err)
	}
	if _, _, ok := mountOf(t, filepath.Join(bundle, shmDir)); ok {
		t.Fatal("shm still mounted after Stop")
	}
	if err := p.Release(ctx); err != nil {
		t.Fatal(err)
	}
	nothingLeft(t, bundle, ipcIno)
}

// orphanReaped makes an orphan in the pod's PID namespace (a background sleep of a shell that
// exits at once): it is re-parented to the holder, PID 1 there, and once it exits the kernel
// reaps it (the holder ignores SIGCHLD): no zombie.
func orphanReaped(t *testing.T, h int) {
	t.Helper()
	mustRun(t, "nsenter", "-p", "-t", strconv.Itoa(h), "/bin/sh", "-c", "sleep 1 >/dev/null 2>&1 &")
	orphan := 0
	for _, pid := range pids(t) {
		if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil && procLine(t, string(st), "PPid") == strconv.Itoa(h) {
			orphan = pid
		}
	}
	if orphan == 0 {
		t.Fatal("no child of the holder: the orphan was not re-parented to it")
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", orphan))
		if err != nil {
			return // reaped
		}
		if time.Now().After(deadline) {
			t.Fatalf("orphan %d not reaped: %s", orphan, st)
		}
	}
}

func pids(t *testing.T) []int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, e := range ents {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			out = append(out, pid)
		}
	}
	return out
}

// nothingLeft checks that nothing of a pod is left: no file in its bundle, no mount under it,
// no process in (or file pinning) its IPC namespace.
func nothingLeft(t *testing.T, bundle string, ipcIno uint64) {
	t.Helper()
	if left, _ := os.ReadDir(bundle); len(left) != 0 {
		t.Errorf("left in the bundle: %v", left)
	}
	if b, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(b), bundle) {
		t.Errorf("a mount under the bundle is left")
	}
	for _, pid := range pids(t) {
		var st unix.Stat_t
		if unix.Stat(nsPath(pid, "ipc"), &st) == nil && st.Ino == ipcIno {
			t.Errorf("process %d is in the pod's IPC namespace", pid)
		}
	}
}

// A host-network pod (no netns path; PID per container): the holder shares the host's network
// and UTS namespaces and PID namespace, has an IPC namespace of its own; the hostname file is
// the host's.
func TestHostNetworkPod(t *testing.T) {
	shimtest.RequireRoot(t)
	ctx := t.Context()
	host := hostNamespaces(t)
	hostName, _ := os.Hostname()
	bundle := t.TempDir()
	p, h := startedPod(t, Options{ID: "hostnet-pod", Bundle: bundle, Config: &Config{
		Network: ModeNode, PID: ModeContainer, Sysctls: map[string]string{"kernel.shm_rmid_forced": "1"},
	}})
	for ns, want := range map[string]bool{"net": true, "uts": true, "pid": true, "ipc": false} {
		if got := nsIno(t, nsPath(h, ns)) == host[ns]; got != want {
			t.Errorf("%s namespace is the host's: %v, want %v", ns, got, want)
		}
	}
	if got := strings.TrimSpace(mustRun(t, "nsenter", "-i", "-t", strconv.Itoa(h), "cat", "/proc/sys/kernel/shm_rmid_forced")); got != "1" {
		t.Errorf("ipc sysctl inside %q", got)
	}
	if b, _ := os.ReadFile(filepath.Join(bundle, hostnameFile)); string(b) != hostName+"\n" {
		t.Errorf("hostname file %q", b)
	}
	ipcIno := nsIno(t, nsPath(h, "ipc"))
	if err := p.Release(ctx); err != nil {
		t.Fatal(err)
	}
	nothingLeft(t, bundle, ipcIno)
}

// A shim killed with SIGKILL leaves no holder: the holder reads EOF once the kernel closes the
// dead shim's end of the pipe, and exits. CleanupBundle (the delete action's) then removes the
// dead pod's mount and files.
func TestShimKilled(t *testing.T) {
	shimtest.RequireRoot(t)
	// Orphans of the test come to it (and TestMain reaps them), not to the host's init.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Fatal(err)
	}
	defer unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)

	bundle := t.TempDir()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	shim := exec.Command(os.Args[0])
	shim.Env = append(os.Environ(), fakeShimEnv+"="+bundle)
	shim.Stdout, shim.Stderr = w, os.Stderr
	ec, err := reaper.Default.Start(shim)
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil {
		t.Fatalf("fake shim: %v", err)
	}
	h, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatalf("fake shim said %q", line)
	}
	if comm := readProc(t, h, "comm"); comm != holderComm+"\n" {
		t.Fatalf("pid %d is %q", h, comm)
	}
	if err := shim.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	reaper.Default.Wait(shim, ec)
	for deadline := time.Now().Add(5 * time.Second); unix.Kill(h, 0) == nil; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("holder %d outlived its shim", h)
		}
	}
	if _, _, ok := mountOf(t, filepath.Join(bundle, shmDir)); !ok {
		t.Fatal("the dead shim's pod has no shm mount: nothing to clean up")
	}
	CleanupBundle(t.Context(), bundle)
	CleanupBundle(t.Context(), bundle) // idempotent
	nothingLeft(t, bundle, 0)
}

// fakeShimEnv, set to a bundle, makes the test binary a stand-in shim: it starts a pod in that
// bundle, prints the holder's pid and waits to be killed.
const fakeShimEnv = "POD_TEST_SHIM"

func runFakeShim() int {
	p, err := New(Options{ID: "fake-shim-pod", Bundle: os.Getenv(fakeShimEnv), Config: &Config{PID: ModePod}})
	if err == nil {
		err = p.Start(context.Background())
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println(p.Status().Pid)
	select {}
}

func readTrim(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func hasAll(opts string, want ...string) bool {
	have := map[string]bool{}
	for _, o := range strings.Split(opts, ",") {
		have[o] = true
	}
	for _, w := range want {
		if !have[w] {
			return false
		}
	}
	return true
}

// The holder goes where the CRI plugin puts a pause container: the cgroup <parent>/<pod id> in
// every hierarchy (or <id> below the shim's own cgroup without a parent), recorded in the
// bundle, with the OOM score of a sandbox (-998, or as low as the shim may set it). Stop
// removes the cgroup; so does CleanupBundle after a holder that outlived no shim.
func TestHolderPlacement(t *testing.T) {
	shimtest.RequireRoot(t)
	parent := fmt.Sprintf("/pod-test-%d", os.Getpid())
	t.Cleanup(func() {
		dirs, _ := filepath.Glob("/sys/fs/cgroup/*" + parent)
		unified, _ := filepath.Glob("/sys/fs/cgroup" + parent)
		for _, d := range append(dirs, unified...) {
			_ = unix.Rmdir(d)
		}
	})
	for _, tc := range []struct{ name, parent string }{{"parent", parent}, {"nested", ""}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			bundle := t.TempDir()
			id := "placed-" + tc.name
			p, h := startedPod(t, Options{ID: id, Bundle: bundle, Config: &Config{Network: ModeNode, IPC: ModeNode, PID: ModePod, CgroupParent: tc.parent}})
			own := readProc(t, os.Getpid(), "cgroup")
			for _, line := range strings.Split(strings.TrimSpace(readProc(t, h, "cgroup")), "\n") {
				f := strings.SplitN(line, ":", 3)
				want := filepath.Join(tc.parent, id)
				if tc.parent == "" { // below the test's own cgroup in that hierarchy
					for _, o := range strings.Split(strings.TrimSpace(own), "\n") {
						if of := strings.SplitN(o, ":", 3); of[0] == f[0] {
							want = filepath.Join(of[2], id)
						}
					}
				}
				if len(f) != 3 || f[2] != want {
					t.Errorf("holder in %q, want %s", line, want)
				}
			}
			dirs := strings.Fields(readTrim(t, filepath.Join(bundle, cgroupsFile)))
			if len(dirs) == 0 {
				t.Fatal("no cgroup recorded")
			}
			expectOOMScore(t, h)
			if err := p.Stop(ctx); err != nil {
				t.Fatal(err)
			}
			for _, d := range dirs {
				if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("cgroup %s left after Stop (%v)", d, err)
				}
			}
			if _, err := os.Stat(filepath.Join(bundle, cgroupsFile)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s left after Stop", cgroupsFile)
			}
		})
	}
	t.Run("cleanup-bundle", func(t *testing.T) {
		bundle := t.TempDir()
		h, err := startHolder(nsSpec{id: "placed-cleanup"})
		if err != nil {
			t.Fatal(err)
		}
		dirs, err := placeHolder(bundle, parent, "placed-cleanup", h.pid)
		if err != nil {
			h.abort()
			t.Fatal(err)
		}
		h.abort() // as when its shim dies: the holder exits, its cgroup stays
		CleanupBundle(t.Context(), bundle)
		for _, d := range dirs {
			if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("cgroup %s left after CleanupBundle (%v)", d, err)
			}
		}
	})
}

// expectOOMScore checks that pid has a sandbox's OOM score, or, where the test may not lower a
// score that far (no CAP_SYS_RESOURCE), the lowest it may set: one lower is refused.
func expectOOMScore(t *testing.T, pid int) {
	t.Helper()
	path := fmt.Sprintf("/proc/%d/oom_score_adj", pid)
	adj, err := strconv.Atoi(readTrim(t, path))
	if err != nil {
		t.Fatal(err)
	}
	if adj == sandboxOOMScoreAdj {
		return
	}
	if err := os.WriteFile(path, []byte(strconv.Itoa(adj-1)), 0); !errors.Is(err, os.ErrPermission) {
		t.Errorf("holder's oom_score_adj %d, but %d is allowed too (%v): not the lowest", adj, adj-1, err)
	}
}

// usernsNetns makes what CRI makes for a user-namespaced pod with a network of its own: a
// network namespace inside a new user namespace with maps (here 0 → 100000, 65536 ids), bound
// to a file of the test's.
func usernsNetns(t *testing.T, maps []IDMap) string {
	t.Helper()
	cmd := exec.Command("sleep", "60")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWUSER | unix.CLONE_NEWNET,
		UidMappings: idMaps(maps), GidMappings: idMaps(maps)}
	ec, err := reaper.Default.Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _, _ = reaper.Default.Wait(cmd, ec) }()
	path := filepath.Join(t.TempDir(), "netns")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(nsPath(cmd.Process.Pid, "net"), path, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Unmount(path, unix.MNT_DETACH) })
	return path
}

// ownerIno is the inode of the user namespace that owns the namespace at path.
func ownerIno(t *testing.T, path string) uint64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u, err := ownerUserns(f)
	if err != nil || u == nil {
		t.Fatalf("owner of %s: %v (the host's: %v)", path, err, u == nil)
	}
	defer u.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(u.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// A pod with a user namespace: with a network of its own, the holder joins the user namespace
// that owns it (as CRI makes it) and makes its IPC, UTS and PID namespaces inside it (members in
// it must own them); with the host's network, a user namespace is made with the pod's maps. In
// both the holder runs as 65535 of the pod (the host's 100000 + 65535), PID 1 of the pod, with
// the pod's hostname.
func TestUsernsPod(t *testing.T) {
	shimtest.RequireRoot(t)
	maps := []IDMap{{ContainerID: 0, HostID: 100000, Length: 65536}}
	for _, tc := range []struct {
		name    string
		network NamespaceMode
	}{{"pod-network", ModePod}, {"host-network", ModeNode}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			netns := ""
			if tc.network == ModePod {
				netns = usernsNetns(t, maps)
			}
			p, h := startedPod(t, Options{ID: "userns-" + tc.name, Bundle: t.TempDir(), NetNSPath: netns, Config: &Config{
				Hostname: "userns-pod", Network: tc.network, PID: ModePod, HasUserns: true, Userns: ModePod, UIDs: maps, GIDs: maps,
			}})
			if m := strings.Fields(readProc(t, h, "uid_map")); len(m) != 3 || m[0] != "0" || m[1] != "100000" || m[2] != "65536" {
				t.Errorf("holder's uid_map %q", m)
			}
			user := nsIno(t, nsPath(h, "user"))
			if netns != "" && ownerIno(t, netns) != user {
				t.Error("the holder is not in the user namespace that owns the pod's network namespace")
			}
			for _, ns := range []string{"ipc", "pid", "mnt"} {
				if ownerIno(t, nsPath(h, ns)) != user {
					t.Errorf("the holder's %s namespace is not owned by the pod's user namespace", ns)
				}
			}
			if uid := statusLine(t, h, "Uid"); uid != "165535\t165535\t165535\t165535" {
				t.Errorf("holder's uid %q, want 65535 of the pod (165535)", uid)
			}
			if nspid := statusLine(t, h, "NSpid"); nspid != fmt.Sprintf("%d\t1", h) {
				t.Errorf("NSpid %q, want PID 1 of the pod", nspid)
			}
			if tc.network == ModePod {
				if got := strings.TrimSpace(mustRun(t, "nsenter", "-u", "-t", strconv.Itoa(h), "hostname")); got != "userns-pod" {
					t.Errorf("hostname inside %q", got)
				}
			}
			expectCapsDropped(t, h)
			if err := p.Stop(ctx); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// expectCapsDropped checks every capability set of pid is empty.
func expectCapsDropped(t *testing.T, pid int) {
	t.Helper()
	for _, k := range []string{"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"} {
		if v := statusLine(t, pid, k); v != "0000000000000000" {
			t.Errorf("%s %s", k, v)
		}
	}
}
