//go:build integration && linux

package tests

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/custom-shim/containerd-shim-custom-v1/tests/harness"
)

// upgradeFrom is the older build of this shim the upgrade test starts from: a commit of this
// repository's history (CST_UPGRADE_FROM overrides it). The default is the commit of the
// session-4 CI run (all integration tests and the compatibility subset passed there): what a
// node could be running when a newer release is rolled out. No release tag exists yet; once
// one does, pin it here.
const upgradeFrom = "52941634ceaa933ee5fcdb197d985ca786c4b666"

// oldVersion is the version stamped into the old build, so that -v tells the two apart.
const oldVersion = "v0.0.0-upgrade-old"

// groupAnnotation groups containers into one shim (manager/group_linux.go).
const groupAnnotation = "io.containerd.custom.v1.group"

// TestShimUpgrade replaces the shim binary on containerd's PATH, atomically, while containers
// and a group of containers run on an older build of it (built from git history in the test),
// on containerd 2.4 and 1.6, and checks what an operator relies on:
//
//   - the old shim servers keep serving their containers: exec, kill, delete;
//   - a new container of a running group joins the group's (old) shim;
//   - containerd cleans up after an old shim that died (SIGKILL) by running the new binary's
//     `delete` on the bundle the old one wrote: the task ends, its process, runc state,
//     bundle and mounts go;
//   - new containers and groups get the new binary (/proc/<shim>/exe is its inode, -v its version).
func TestShimUpgrade(t *testing.T) {
	paths := harness.DefaultPaths(t)
	harness.Require(t, harness.Executable(paths.Shim), "%s is not built (run `make build`)", paths.Shim)
	old := buildOldShim(t, paths)
	for _, spec := range harness.Daemons(paths) {
		t.Run(spec.Name, func(t *testing.T) { testShimUpgrade(t, spec, paths, old) })
	}
}

// buildOldShim builds the shim of commit upgradeFrom (git archive into a temp dir, static, with
// oldVersion) into _output/upgrade/<commit>/, reusing an earlier build of the same commit.
func buildOldShim(t *testing.T, p harness.Paths) string {
	t.Helper()
	commit := upgradeFrom
	if v := os.Getenv("CST_UPGRADE_FROM"); v != "" {
		commit = v
	}
	out := filepath.Join(p.Repo, "_output", "upgrade", commit, "containerd-shim-custom-v1")
	if harness.Executable(out) {
		return out
	}
	_, err := exec.Command("git", "-C", p.Repo, "cat-file", "-e", commit+"^{commit}").CombinedOutput()
	harness.Require(t, err == nil, "commit %s (the older shim the upgrade starts from) is not in this clone's history: "+
		"CI needs a full clone (`git fetch --unshallow`), or set CST_UPGRADE_FROM to a commit that is there", commit)
	src := t.TempDir()
	archive := exec.Command("sh", "-c", `git -C "$1" archive "$2" | tar -x -C "$3"`, "sh", p.Repo, commit, src)
	if b, err := archive.CombinedOutput(); err != nil {
		t.Fatalf("git archive %s: %v\n%s", commit, err, b)
	}
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go") //nolint:staticcheck // the Go that built this test, where it runs (else "go" from PATH below)
	if !harness.Executable(goBin) {
		goBin = "go"
	}
	build := exec.Command(goBin, "build", "-trimpath", "-ldflags",
		"-X github.com/custom-shim/containerd-shim-custom-v1/version.Version="+oldVersion, "-o", out,
		"./cmd/containerd-shim-custom-v1")
	build.Dir = src
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	start := time.Now()
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the shim of %s: %v\n%s", commit, err, b)
	}
	t.Logf("built the shim of %s in %s: %s", commit, time.Since(start).Round(time.Second), out)
	return out
}

// upgradeRun is one daemon's upgrade scenario.
type upgradeRun struct {
	t   *testing.T
	d   *harness.Daemon
	old os.FileInfo // the old binary as installed on PATH
}

func testShimUpgrade(t *testing.T, spec harness.DaemonSpec, paths harness.Paths, oldBin string) {
	d := harness.Start(t, spec, paths)
	u := &upgradeRun{t: t, d: d}
	// The old binary on PATH as a node has it: a file of its own, not the harness's link.
	u.old = u.replaceBinary(oldBin)
	if out := shimVersion(t, d.ShimBin()); !strings.Contains(out, oldVersion) {
		t.Fatalf("old binary -v: %q", out)
	}
	group := "upgrade-" + d.Namespace
	u.run("solo")
	u.run("g1", "--annotation", groupAnnotation+"="+group)
	u.run("victim")
	soloShim, groupShim, victimShim := u.shimOf("solo"), u.shimOf("g1"), u.shimOf("victim")
	for _, pid := range []int{soloShim, groupShim, victimShim} {
		u.expectExe(pid, u.old, "old")
	}

	newInfo := u.replaceBinary(paths.Shim)
	if os.SameFile(newInfo, u.old) {
		t.Fatal("the new binary has the old one's inode: the replacement was not a rename")
	}

	t.Run("old-shims-keep-serving", func(t *testing.T) {
		u.t = t
		for _, pid := range []int{soloShim, groupShim, victimShim} {
			u.expectExe(pid, u.old, "old (still, after the replacement)")
		}
		u.expectExec("solo")
		u.d.MustCtr(t, "tasks", "kill", "-s", "SIGKILL", "solo")
		u.d.WaitTask(t, "solo", "STOPPED", 30*time.Second)
		u.d.MustCtr(t, "tasks", "rm", "solo")
		u.d.MustCtr(t, "containers", "rm", "solo")
		u.waitGone(soloShim, "the old shim of solo after its delete")
	})
	t.Run("new-member-joins-old-group", func(t *testing.T) {
		u.t = t
		u.run("g2", "--annotation", groupAnnotation+"="+group)
		if pid := u.shimOf("g2"); pid != groupShim {
			t.Fatalf("g2 is served by shim %d, want the group's running old shim %d", pid, groupShim)
		}
		u.expectExec("g2")
		for _, id := range []string{"g1", "g2"} {
			u.d.MustCtr(t, "tasks", "kill", "-s", "SIGKILL", id)
			u.d.WaitTask(t, id, "STOPPED", 30*time.Second)
			u.d.MustCtr(t, "tasks", "rm", id)
			u.d.MustCtr(t, "containers", "rm", id)
		}
		u.waitGone(groupShim, "the group's old shim after its last delete")
	})
	t.Run("new-binary-cleans-up-after-dead-old-shim", func(t *testing.T) {
		u.t = t
		initPid := u.d.Tasks(t)["victim"].Pid
		bundle := u.d.Bundle("victim")
		if err := syscall.Kill(victimShim, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		// containerd sees the connection drop, runs `<new binary> delete` in the bundle (which
		// runs `runc delete --force`) and forgets the task.
		deadline := time.Now().Add(30 * time.Second)
		for {
			task, listed := u.d.Tasks(t)["victim"]
			if !listed || task.Status == "STOPPED" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("victim still %s 30s after its shim was killed", task.Status)
			}
			time.Sleep(100 * time.Millisecond)
		}
		if _, listed := u.d.Tasks(t)["victim"]; listed {
			u.d.MustCtr(t, "tasks", "rm", "victim")
		}
		u.waitGone(initPid, "the victim's init process (killed by the new binary's delete)")
		// The task is reported gone (or stopped) before containerd has finished its cleanup.
		for _, left := range []string{bundle, filepath.Join("/run/containerd/runc", u.d.Namespace, "victim")} {
			deadline := time.Now().Add(eventTimeout)
			for _, err := os.Stat(left); !errors.Is(err, os.ErrNotExist); _, err = os.Stat(left) {
				if time.Now().After(deadline) {
					t.Fatalf("%s still there %s after the dead shim's cleanup began: %v", left, eventTimeout, err)
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
		u.d.MustCtr(t, "containers", "rm", "victim")
		if log := u.d.Log(); !strings.Contains(log, "victim") {
			t.Logf("containerd's log does not name victim's cleanup:\n%s", log)
		}
	})
	t.Run("new-containers-use-new-binary", func(t *testing.T) {
		u.t = t
		u.run("fresh")
		u.run("g3", "--annotation", groupAnnotation+"=new-"+group)
		want := shimVersion(t, paths.Shim)
		for _, id := range []string{"fresh", "g3"} {
			pid := u.shimOf(id)
			u.expectExe(pid, newInfo, "new")
			if got := shimVersion(t, procExe(pid)); got != want {
				t.Errorf("shim of %s (-v through /proc/%d/exe):\n%s\nwant the new binary's:\n%s", id, pid, got, want)
			}
			u.expectExec(id)
			u.d.MustCtr(t, "tasks", "kill", "-s", "SIGKILL", id)
			u.d.WaitTask(t, id, "STOPPED", 30*time.Second)
			u.d.MustCtr(t, "tasks", "rm", id)
			u.d.MustCtr(t, "containers", "rm", id)
			u.waitGone(pid, "the new shim of "+id)
		}
	})
	u.t = t
	if leaks := d.WaitClean(harness.SnapshotSockets(), 10*time.Second); !leaks.Empty() {
		t.Errorf("left behind:%s", leaks)
	}
}

// replaceBinary installs src as the shim on the daemon's PATH as an installer does: a copy in
// the same directory, then a rename over the old name. It returns the installed file's info.
func (u *upgradeRun) replaceBinary(src string) os.FileInfo {
	u.t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		u.t.Fatal(err)
	}
	dst := u.d.ShimBin()
	tmp := filepath.Join(filepath.Dir(dst), ".containerd-shim-custom-v1.new")
	if err := os.WriteFile(tmp, b, 0o755); err != nil {
		u.t.Fatal(err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		u.t.Fatal(err)
	}
	info, err := os.Stat(dst)
	if err != nil {
		u.t.Fatal(err)
	}
	return info
}

// run starts container id (busybox, sleeping) detached on our runtime, with extra ctr run flags.
func (u *upgradeRun) run(id string, flags ...string) {
	u.t.Helper()
	args := append([]string{"run", "-d", "--null-io", "--runtime", harness.RuntimeCustom}, flags...)
	args = append(args, harness.ImageBusybox.Ref, id, "sleep", "3600")
	u.d.MustCtr(u.t, args...)
	u.d.WaitTask(u.t, id, "RUNNING", 30*time.Second)
}

// shimOf is the pid of the shim serving container id: the parent of its init (the shim is the
// subreaper of what runc starts).
func (u *upgradeRun) shimOf(id string) int {
	u.t.Helper()
	task, ok := u.d.Tasks(u.t)[id]
	if !ok {
		u.t.Fatalf("no task %s", id)
	}
	ppid, err := parentPid(task.Pid)
	if err != nil {
		u.t.Fatal(err)
	}
	return ppid
}

// expectExe checks that process pid executes the file described by want.
func (u *upgradeRun) expectExe(pid int, want os.FileInfo, which string) {
	u.t.Helper()
	have, err := os.Stat(procExe(pid))
	if err != nil {
		u.t.Fatalf("shim %d: %v", pid, err)
	}
	if !os.SameFile(have, want) {
		link, _ := os.Readlink(procExe(pid))
		u.t.Fatalf("shim %d runs %s, not the %s binary", pid, link, which)
	}
}

// expectExec runs an exec in container id through ctr and checks its output.
func (u *upgradeRun) expectExec(id string) {
	u.t.Helper()
	r := u.d.MustCtr(u.t, "tasks", "exec", "--exec-id", "upgrade-"+id, id, "echo", "exec in "+id)
	if got := strings.TrimSpace(r.Stdout); got != "exec in "+id {
		u.t.Fatalf("exec in %s: stdout %q", id, r.Stdout)
	}
}

// waitGone waits for process pid to exit (a zombie counts as gone: a process whose parent died
// is reaped by whatever PID 1 the machine has).
func (u *upgradeRun) waitGone(pid int, what string) {
	u.t.Helper()
	deadline := time.Now().Add(eventTimeout)
	for alive(pid) {
		if time.Now().After(deadline) {
			u.t.Fatalf("%s (pid %d) still running after %s", what, pid, eventTimeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) state ...: comm may hold spaces and parentheses, the state follows the last ')'.
	i := strings.LastIndexByte(string(stat), ')')
	return i < 0 || i+2 >= len(stat) || stat[i+2] != 'Z'
}

// shimVersion runs a shim binary's -v.
func shimVersion(t *testing.T, bin string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "-v").Output()
	if err != nil {
		t.Fatalf("%s -v: %v", bin, err)
	}
	return strings.Replace(string(out), filepath.Base(bin)+":", "", 1)
}
