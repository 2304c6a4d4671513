//go:build linux

package pod

import (
	"bytes"
	"debug/elf"
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

// Both images are well-formed static executables (as go generate assembles them): one PT_LOAD,
// read+execute, holding the entry point; a PT_GNU_STACK without execute; no interpreter; and
// the name the holder gives itself.
func TestHolderImageLayout(t *testing.T) {
	for _, tc := range []struct {
		arch    string
		machine elf.Machine
	}{{"amd64", elf.EM_X86_64}, {"arm64", elf.EM_AARCH64}} {
		t.Run(tc.arch, func(t *testing.T) {
			image, err := os.ReadFile("holder_" + tc.arch + ".elf")
			if err != nil {
				t.Fatal(err)
			}
			f, err := elf.NewFile(bytes.NewReader(image))
			if err != nil {
				t.Fatal(err)
			}
			if f.Class != elf.ELFCLASS64 || f.Data != elf.ELFDATA2LSB || f.Type != elf.ET_EXEC || f.Machine != tc.machine {
				t.Fatalf("header: %+v", f.FileHeader)
			}
			var loads, stacks int
			for _, p := range f.Progs {
				switch p.Type {
				case elf.PT_LOAD:
					loads++
					if p.Flags != elf.PF_R|elf.PF_X || f.Entry < p.Vaddr || f.Entry >= p.Vaddr+p.Memsz {
						t.Errorf("PT_LOAD %+v (entry %#x)", p.ProgHeader, f.Entry)
					}
				case elf.PT_GNU_STACK:
					stacks++
					if p.Flags&elf.PF_X != 0 {
						t.Errorf("executable stack: %+v", p.ProgHeader)
					}
				case elf.PT_INTERP:
					t.Errorf("an interpreter: %+v", p.ProgHeader)
				}
			}
			if loads != 1 || stacks != 1 {
				t.Errorf("%d PT_LOAD, %d PT_GNU_STACK", loads, stacks)
			}
			if !bytes.Contains(image, []byte(holderComm+"\x00")) {
				t.Errorf("no %q in the image", holderComm)
			}
			t.Logf("%s image: %d bytes", tc.arch, len(image))
		})
	}
}

// The holder, run from the sealed memfd as the shim runs it, confined as a pause container is
// and more: it blocks on fd 3, names itself, ignores SIGCHLD, holds no fd but its life line, has
// no environment, sees an empty read-only root of its own (nothing of the host's tree through
// /proc/<pid>/root or cwd, not even through ".."), runs as 65535:65535 with every capability set
// empty, not dumpable, with no_new_privs and a seccomp filter, and exits 0 once the life line's
// write end closes.
func TestHolderRuns(t *testing.T) {
	shimtest.RequireRoot(t)
	marker := filepath.Join(t.TempDir(), "host-marker")
	if err := os.WriteFile(marker, []byte("host"), 0o644); err != nil {
		t.Fatal(err)
	}
	h, err := startHolder(nsSpec{id: "holder-runs"})
	if err != nil {
		t.Fatal(err)
	}
	exited := make(chan int, 1)
	go func() { exited <- h.wait() }()
	t.Cleanup(func() { h.release(); h.kill() })

	select {
	case st := <-exited:
		t.Fatalf("holder exited (status %d) with its pipe open", st)
	case <-time.After(200 * time.Millisecond):
	}
	if comm := readProc(t, h.pid, "comm"); comm != holderComm+"\n" {
		t.Errorf("comm %q", comm)
	}
	if ign := statusField(t, h.pid, "SigIgn"); ign&(1<<(unix.SIGCHLD-1)) == 0 {
		t.Errorf("SIGCHLD not ignored: SigIgn %#x", ign)
	}
	if state := statusLine(t, h.pid, "State"); !strings.HasPrefix(state, "S") {
		t.Errorf("state %q, want sleeping", state)
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", h.pid))
	if err != nil || len(fds) != 1 || fds[0].Name() != "3" {
		t.Errorf("fds %v (%v), want only 3", fds, err)
	}
	if fd3, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/3", h.pid)); err != nil || !strings.HasPrefix(fd3, "pipe:") {
		t.Errorf("fd 3: %q %v", fd3, err)
	}
	if cmdline := readProc(t, h.pid, "cmdline"); cmdline != holderComm+"\x00holder-runs\x00" {
		t.Errorf("cmdline %q", cmdline)
	}
	if env := readProc(t, h.pid, "environ"); env != "" {
		t.Errorf("environment %q", env)
	}
	expectConfined(t, h.pid, marker)

	h.release()
	select {
	case st := <-exited:
		if st != 0 {
			t.Fatalf("exit status %d", st)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("holder did not exit after its pipe closed")
	}
}

// expectConfined checks what the kernel says of holder pid's confinement; marker is a file of
// the host's that must not be reachable through it.
func expectConfined(t *testing.T, pid int, marker string) {
	t.Helper()
	for _, dir := range []string{"root", "cwd"} {
		base := fmt.Sprintf("/proc/%d/%s", pid, dir)
		if entries, err := os.ReadDir(base); err != nil || len(entries) != 0 {
			t.Errorf("%s lists %v (%v), want an empty directory", base, entries, err)
		}
		for _, path := range []string{base + marker, base + "/../../.." + marker} {
			if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the host's %s is reachable as %s (%v)", marker, path, err)
			}
		}
		if err := os.WriteFile(base+"/written", nil, 0o644); err == nil || !errors.Is(err, unix.EROFS) {
			t.Errorf("write into %s: %v, want EROFS", base, err)
		}
	}
	mounts := strings.Split(strings.TrimSpace(readProc(t, pid, "mountinfo")), "\n")
	if f := strings.Fields(mounts[0]); len(mounts) != 1 || len(f) < 10 || f[4] != "/" || !strings.HasPrefix(f[5], "ro,") ||
		f[len(f)-3] != "tmpfs" {
		t.Errorf("mount table %q, want one read-only tmpfs at /", mounts)
	}
	for key, want := range map[string]string{
		"Uid": "65535\t65535\t65535\t65535", "Gid": "65535\t65535\t65535\t65535", "Groups": "",
		"CapInh": "0000000000000000", "CapPrm": "0000000000000000", "CapEff": "0000000000000000",
		"CapBnd": "0000000000000000", "CapAmb": "0000000000000000", "NoNewPrivs": "1", "Seccomp": "2",
	} {
		if got := statusLine(t, pid, key); got != want {
			t.Errorf("%s: %q, want %q", key, got, want)
		}
	}
	var st unix.Stat_t // a process that is not dumpable has its /proc/<pid>/* owned by root
	if err := unix.Stat(fmt.Sprintf("/proc/%d/status", pid), &st); err != nil || st.Uid != 0 {
		t.Errorf("/proc/%d/status owned by uid %d (%v): the holder is dumpable", pid, st.Uid, err)
	}
}

// A holder that fails a step reports the step and the errno, and startHolder reaps it: a sysctl
// the kernel does not have fails with ENOENT, named by its index (Pod.Start names the key).
func TestHolderReportsFailure(t *testing.T) {
	shimtest.RequireRoot(t)
	_, err := startHolder(nsSpec{id: "fails", unshare: unix.CLONE_NEWIPC,
		sysctls: []sysctl{{key: "kernel.shm_nonexistent", path: "/proc/sys/kernel/shm_nonexistent", value: "1"}}})
	var se *sysctlError
	if !errors.As(err, &se) || se.index != 0 || !errors.Is(err, unix.ENOENT) {
		t.Fatalf("start: %v; want sysctl 0 failing with ENOENT", err)
	}
	t.Log(err)
}

// The arm64 image under qemu-aarch64 (user mode), in a mount namespace of its own: every step
// up to its seccomp filter succeeds (qemu-user refuses PR_SET_SECCOMP with EINVAL, so that one
// step can only run on an arm64 machine), and the report says so. Where qemu-user-static (or
// qemu-user) is not installed, the test fails with CI=true and is skipped otherwise.
func TestHolderArm64UnderQemu(t *testing.T) {
	shimtest.RequireRoot(t)
	qemu := ""
	for _, name := range []string{"qemu-aarch64-static", "qemu-aarch64"} {
		if p, err := exec.LookPath(name); err == nil {
			qemu = p
			break
		}
	}
	if qemu == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("no qemu-aarch64 (make deps installs qemu-user-static)")
		}
		t.Skip("no qemu-aarch64 (apt install qemu-user-static)")
	}
	// qemu runs only a file its caller may execute.
	b, err := os.ReadFile("holder_arm64.elf")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "holder-arm64")
	if err := os.WriteFile(path, b, 0o755); err != nil {
		t.Fatal(err)
	}
	image, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer image.Close()
	var files pipes
	defer files.close()
	lifeR, _, err := files.pipe2()
	if err != nil {
		t.Fatal(err)
	}
	reportR, reportW, err := files.osPipe()
	if err != nil {
		t.Fatal(err)
	}
	cfgR, cfgW, err := files.osPipe()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cfgW.Write((&nsSpec{unshare: unix.CLONE_NEWIPC | unix.CLONE_NEWUTS, hostname: "arm64"}).config()); err != nil {
		t.Fatal(err)
	}
	cfgW.Close()
	// qemu itself opens the image by path: /proc/self/fd/4 is the file given to it as fd 4.
	cmd := &exec.Cmd{
		Path: qemu, Args: []string{qemu, "/proc/self/fd/4"}, Env: []string{},
		ExtraFiles:  []*os.File{lifeR, image, reportW, cfgR},
		SysProcAttr: &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWNS},
	}
	ec, err := reaper.Default.Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	lifeR.Close()
	reportW.Close()
	cfgR.Close()
	_, err = readReport(reportR, false)
	status, _ := reaper.Default.Wait(cmd, ec)
	if !errors.Is(err, unix.EINVAL) || !strings.Contains(err.Error(), "install its seccomp filter") || status != 1 {
		t.Fatalf("report %v, exit %d; want %q with EINVAL (qemu-user), exit 1", err, status, "install its seccomp filter")
	}
}

// The holder's cost, as /proc reports it: VmRSS, RssAnon (its private memory) and Pss. With
// PAUSE_BINARY set (e.g. a build of hack/pause), the same figures of that program, idle, for
// comparison.
func TestHolderCost(t *testing.T) {
	shimtest.RequireRoot(t)
	h, err := startHolder(nsSpec{id: "holder-cost"})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan int, 1)
	go func() { done <- h.wait() }()
	defer func() { h.release(); <-done }()
	anon := logCost(t, "holder", h.pid)
	if anon > 16 {
		t.Errorf("RssAnon %d kB, want at most 16 kB", anon)
	}

	if pause := os.Getenv("PAUSE_BINARY"); pause != "" {
		cmd := exec.Command(pause)
		ec, err := reaper.Default.Start(cmd)
		if err != nil {
			t.Fatal(err)
		}
		logCost(t, filepath.Base(pause), cmd.Process.Pid)
		_ = cmd.Process.Signal(unix.SIGTERM)
		_, _ = reaper.Default.Wait(cmd, ec)
	}
}

// logCost logs the memory figures of pid once it sleeps, and returns its RssAnon in kB.
func logCost(t *testing.T, name string, pid int) uint64 {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !strings.HasPrefix(statusLine(t, pid, "State"), "S"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s %d does not go to sleep", name, pid)
		}
	}
	time.Sleep(200 * time.Millisecond) // let a Go program finish starting up
	rss, anon := statusField(t, pid, "VmRSS"), statusField(t, pid, "RssAnon")
	pss, dirty := rollupField(t, pid, "Pss"), rollupField(t, pid, "Private_Dirty")
	t.Logf("%s pid %d: VmRSS %d kB, RssAnon %d kB, Pss %d kB, Private_Dirty %d kB, VmPTE %s, threads %s",
		name, pid, rss, anon, pss, dirty, statusLine(t, pid, "VmPTE"), statusLine(t, pid, "Threads"))
	return anon
}

func readProc(t *testing.T, pid int, name string) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/%s", pid, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// statusLine returns the value of a /proc/<pid>/status line.
func statusLine(t *testing.T, pid int, key string) string {
	t.Helper()
	return procLine(t, readProc(t, pid, "status"), key)
}

func procLine(t *testing.T, text, key string) string {
	t.Helper()
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(line, key+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("no %s in %q", key, text)
	return ""
}

// statusField returns a number of /proc/<pid>/status (hex for signal masks, kB for sizes).
func statusField(t *testing.T, pid int, key string) uint64 {
	t.Helper()
	return parseField(t, statusLine(t, pid, key), strings.HasPrefix(key, "Sig"))
}

// rollupField returns a kB figure of /proc/<pid>/smaps_rollup.
func rollupField(t *testing.T, pid int, key string) uint64 {
	t.Helper()
	return parseField(t, procLine(t, readProc(t, pid, "smaps_rollup"), key), false)
}

func parseField(t *testing.T, v string, hex bool) uint64 {
	t.Helper()
	v = strings.TrimSpace(strings.TrimSuffix(v, "kB"))
	base := 10
	if hex {
		base = 16
	}
	n, err := strconv.ParseUint(v, base, 64)
	if err != nil {
		t.Fatalf("parse %q: %v", v, err)
	}
	return n
}
