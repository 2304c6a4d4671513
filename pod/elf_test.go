//go:build linux

package pod

import (
	"bytes"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/pkg/sys/reaper"
	"golang.org/x/sys/unix"
)

// Both images are well-formed static executables: one PT_LOAD of the whole file at holderBase,
// read+execute; a PT_GNU_STACK without execute; the entry right after the headers; the name at
// the end, where the code's lea/adr points.
func TestHolderImageLayout(t *testing.T) {
	for _, tc := range []struct {
		name    string
		machine elf.Machine
		image   []byte
		nameAt  int // the code's offset of the name (elf_*.go)
	}{
		{"amd64", elf.EM_X86_64, buildELF(emX86_64, holderX86_64), 0x51},
		{"arm64", elf.EM_AARCH64, buildELF(emAArch64, holderAArch64), 0x60},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := elf.NewFile(bytes.NewReader(tc.image))
			if err != nil {
				t.Fatal(err)
			}
			if f.Class != elf.ELFCLASS64 || f.Data != elf.ELFDATA2LSB || f.Type != elf.ET_EXEC || f.Machine != tc.machine {
				t.Fatalf("header: %+v", f.FileHeader)
			}
			if f.Entry != holderBase+elfCodeOffset {
				t.Fatalf("entry %#x", f.Entry)
			}
			if len(f.Progs) != 2 {
				t.Fatalf("%d program headers", len(f.Progs))
			}
			load, stack := f.Progs[0], f.Progs[1]
			if load.Type != elf.PT_LOAD || load.Flags != elf.PF_R|elf.PF_X || load.Off != 0 || load.Vaddr != holderBase ||
				load.Filesz != uint64(len(tc.image)) || load.Memsz != load.Filesz || load.Align != 0x10000 {
				t.Fatalf("PT_LOAD %+v", load.ProgHeader)
			}
			if stack.Type != elf.PT_GNU_STACK || stack.Flags != elf.PF_R|elf.PF_W {
				t.Fatalf("PT_GNU_STACK %+v", stack.ProgHeader)
			}
			name := tc.image[elfCodeOffset+tc.nameAt:]
			if string(name) != holderComm+"\x00" {
				t.Fatalf("name at %#x: %q", tc.nameAt, name)
			}
			t.Logf("%s image: %d bytes", tc.name, len(tc.image))
		})
	}
}

// The holder, run from the sealed memfd as the shim runs it: it blocks on fd 3, names itself,
// ignores SIGCHLD, holds nothing but stdio and the pipe, and exits 0 once the pipe's write end
// closes.
func TestHolderRuns(t *testing.T) {
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
	if fd3, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/3", h.pid)); err != nil || !strings.HasPrefix(fd3, "pipe:") {
		t.Errorf("fd 3: %q %v", fd3, err)
	}
	if cmdline := readProc(t, h.pid, "cmdline"); cmdline != holderComm+"\x00holder-runs\x00" {
		t.Errorf("cmdline %q", cmdline)
	}
	if env := readProc(t, h.pid, "environ"); env != "" {
		t.Errorf("environment %q", env)
	}

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

// The arm64 image under qemu-aarch64 (user mode): it blocks on fd 3 and exits 0 when the pipe
// closes. Skipped where qemu-user-static (or qemu-user) is not installed.
func TestHolderArm64UnderQemu(t *testing.T) {
	qemu := ""
	for _, name := range []string{"qemu-aarch64-static", "qemu-aarch64"} {
		if p, err := exec.LookPath(name); err == nil {
			qemu = p
			break
		}
	}
	if qemu == "" {
		t.Skip("no qemu-aarch64 (apt install qemu-user-static)")
	}
	path := filepath.Join(t.TempDir(), "holder-arm64")
	if err := os.WriteFile(path, buildELF(emAArch64, holderAArch64), 0o755); err != nil {
		t.Fatal(err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(qemu, path)
	cmd.ExtraFiles = []*os.File{r}
	ec, err := reaper.Default.Start(cmd)
	r.Close()
	if err != nil {
		t.Fatal(err)
	}
	exited := make(chan int, 1)
	go func() { st, _ := reaper.Default.Wait(cmd, ec); exited <- st }()
	select {
	case st := <-exited:
		t.Fatalf("arm64 holder exited (status %d) with its pipe open", st)
	case <-time.After(500 * time.Millisecond):
	}
	w.Close()
	select {
	case st := <-exited:
		if st != 0 {
			t.Fatalf("exit status %d", st)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("arm64 holder did not exit after its pipe closed")
	}
}

// The holder's cost, as /proc reports it: VmRSS, RssAnon (its private memory) and Pss. With
// PAUSE_BINARY set (e.g. a build of hack/pause), the same figures of that program, idle, for
// comparison.
func TestHolderCost(t *testing.T) {
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
