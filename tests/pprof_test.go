//go:build integration && linux

package tests

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/custom-shim/containerd-shim-custom-v1/tests/harness"
)

// pprofShim is the shim_pprof build: CST_PPROF_SHIM, default bin/pprof/containerd-shim-custom-v1
// (`make build-pprof`).
func pprofShim(t *testing.T, p harness.Paths) string {
	t.Helper()
	bin := os.Getenv("CST_PPROF_SHIM")
	if bin == "" {
		bin = filepath.Join(p.Repo, "bin", "pprof", "containerd-shim-custom-v1")
	}
	harness.Require(t, harness.Executable(bin), "%s is not built (run `make build-pprof`)", bin)
	return bin
}

// TestPprof runs the shim_pprof build under containerd at debug log level (so shims run with
// -debug), on 2.4 and 1.6, and reads profiles through `ctr shim pprof` (the pinned ctr 2.4: ctr
// 1.x has no `shim pprof`; it computes the debug socket from the daemon's address, namespace and
// id alone, so it serves a 1.6 daemon too): goroutines of a single container's shim and of a
// group's shim (by group id), and a heap profile. The daemon's teardown checks that the debug
// sockets go with their shims.
func TestPprof(t *testing.T) {
	paths := harness.DefaultPaths(t)
	paths.Shim = pprofShim(t, paths)
	t.Setenv("CST_DEBUG", "1")
	ctr24 := filepath.Join(paths.DepsBin, "ctr")
	for _, spec := range harness.Daemons(paths) {
		t.Run(spec.Name, func(t *testing.T) {
			d := harness.Start(t, spec, paths)
			group := "pprof-group-" + d.Namespace
			u := &upgradeRun{t: t, d: d}
			u.run("prof")
			u.run("prof-g1", "--annotation", groupAnnotation+"="+group)
			u.run("prof-g2", "--annotation", groupAnnotation+"="+group)
			for _, id := range []string{"prof", group} {
				out := shimPprof(t, ctr24, d, id, "goroutines")
				// Every shim server has the ttrpc server's and the task service's goroutines.
				for _, want := range []string{"goroutine ", "github.com/containerd/ttrpc", "containerd-shim-custom-v1/task"} {
					if !strings.Contains(out, want) {
						t.Errorf("pprof goroutines of %s lacks %q:\n%.2000s", id, want, out)
					}
				}
			}
			if heap := shimPprof(t, ctr24, d, "prof", "heap"); len(heap) < 100 {
				t.Errorf("pprof heap of prof: %d bytes", len(heap))
			}
			for _, id := range []string{"prof", "prof-g1", "prof-g2"} {
				d.ForceRemove(context.Background(), id)
			}
		})
	}
}

// shimPprof runs `ctr shim --id id pprof <what>` against the daemon d, with ctr (2.x).
func shimPprof(t *testing.T, ctr string, d *harness.Daemon, id, what string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, ctr, "--address", d.Address, "--namespace", d.Namespace,
		"shim", "--id", id, "pprof", what)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("ctr shim --id %s pprof %s: %v: %s", id, what, err, stderr.String())
	}
	return string(out)
}
