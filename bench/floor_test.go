//go:build bench && linux

package bench

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"time"
)

// floorProgram builds bench/floor (the import-only memory floor, see its doc) with the Go that
// built this test, as the shim is built (CGO_ENABLED=0), and returns its path.
func (b *bench) floorProgram() string {
	b.t.Helper()
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go") //nolint:staticcheck // the Go that built this test, where it runs (else "go" from PATH)
	if _, err := os.Stat(goBin); err != nil {
		goBin = "go"
	}
	out := filepath.Join(b.t.TempDir(), "floor")
	build := exec.Command(goBin, "build", "-trimpath", "-o", out, "./bench/floor")
	build.Dir = b.paths.Repo
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if msg, err := build.CombinedOutput(); err != nil {
		b.t.Fatalf("build bench/floor: %v\n%s", err, msg)
	}
	return out
}

// floorGCs is how many forced collections the floor's second reading runs first: a pkg/shim
// server forces one every 30 s, and the runtime's metadata stops growing after a few (measured:
// 1,510 KiB RssAnon with none, 2,020 after one, 2,400 after two, 2,580 after four, 2,650-2,790
// after 8 to 40).
const floorGCs = 4

// floorMemory runs the floor program (after gc forced collections), leaves it alone for
// settle() as the shims are, reads its memory and stops it.
func (b *bench) floorMemory(bin string, gc int) (memStat, error) {
	dir, err := os.MkdirTemp("", "cst-floor-") // short: a socket path must fit in 108 bytes
	if err != nil {
		return memStat{}, err
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "s")
	args := []string{"-gc", strconv.Itoa(gc), sock}
	cmd := exec.Command(bin, args...)
	if err := cmd.Start(); err != nil {
		return memStat{}, err
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	time.Sleep(settle())
	if _, err := os.Stat(sock); err != nil {
		return memStat{}, fmt.Errorf("floor is not serving: %w", err)
	}
	return readMem(cmd.Process.Pid)
}
