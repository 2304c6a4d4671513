//go:build integration && linux

package tests

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/custom-shim/containerd-shim-custom-v1/internal/shimtest"
	"github.com/custom-shim/containerd-shim-custom-v1/tests/harness"
)

// installerLines are the containerd lines TestInstaller runs on: CST_INSTALLER_LINES, default
// the lines CI builds (2.2 by `make compat-deps`; `make node-test` builds it).
func installerLines() []string {
	if v := os.Getenv("CST_INSTALLER_LINES"); v != "" {
		return strings.Fields(v)
	}
	return []string{"1.6", "2.2", "2.4"}
}

// installerBinary is the node installer under test: CST_INSTALLER, default bin/custom-shim-install.
func installerBinary(t *testing.T, p harness.Paths) string {
	t.Helper()
	bin := os.Getenv("CST_INSTALLER")
	if bin == "" {
		bin = filepath.Join(p.Repo, "bin", "custom-shim-install")
	}
	harness.Require(t, harness.Executable(bin), "%s is not built (run `make installer`)", bin)
	return bin
}

// runInstaller runs the installer and returns its combined output and exit code.
func runInstaller(t *testing.T, bin string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	code := 0
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		code = exitErr.ExitCode()
	} else if err != nil {
		t.Fatalf("run %s %q: %v", bin, args, err)
	}
	t.Logf("%s %s: exit %d\n%s", filepath.Base(bin), strings.Join(args, " "), code, out)
	return string(out), code
}

// configDump runs `containerd --config config config dump`.
func configDump(t *testing.T, containerd, config string) string {
	t.Helper()
	out, err := exec.Command(containerd, "--config", config, "config", "dump").Output()
	if err != nil {
		t.Fatalf("%s --config %s config dump: %v", containerd, config, err)
	}
	return string(out)
}

// handlerTable returns the lines of the dump's table for handler (its header to the next
// header), "" if there is none. 1.x dumps quote keys with ", 2.x with '.
func handlerTable(dump, handler string) string {
	lines := strings.Split(dump, "\n")
	for i, l := range lines {
		h := strings.ReplaceAll(strings.TrimSpace(l), "'", `"`)
		if !strings.HasPrefix(h, "[plugins.") || !strings.HasSuffix(h, ".containerd.runtimes."+handler+"]") &&
			!strings.HasSuffix(h, `.containerd.runtimes."`+handler+`"]`) {
			continue
		}
		var b strings.Builder
		for _, m := range lines[i:] {
			if t := strings.TrimSpace(m); strings.HasPrefix(t, "[") && m != l && !strings.Contains(t, ".runtimes."+handler+".") {
				break
			}
			b.WriteString(strings.TrimSpace(m) + "\n")
		}
		return b.String()
	}
	return ""
}

// TestInstaller runs the node installer (cmd/custom-shim-install) against private daemons of
// each line, each on an operator-style config of the test's own that imports a conf.d glob:
// install (drop-in, 1.6's options file, the binary into the daemon's bin dir), check that
// `containerd config dump` shows the handlers and keeps the operator's settings, start the daemon
// and run a CRI pod through the handler `custom` (its shim must be the installed file, its OCI
// runtime the one the installer set, which proves the options reach the shim: inline on 2.x,
// through ConfigPath on 1.6), remove the pod, uninstall, and check that the config dir is byte
// for byte as before and the binary gone. Plus: a config that imports nothing is refused and
// left alone.
func TestInstaller(t *testing.T) {
	paths := harness.DefaultPaths(t)
	inst := installerBinary(t, paths)
	harness.Require(t, harness.Executable(paths.Shim), "%s is not built (run `make build`)", paths.Shim)
	specs, err := harness.CompatDaemons(paths, installerLines())
	if err != nil {
		t.Fatal(err)
	}
	t.Run("refuses-without-import", func(t *testing.T) { testInstallerRefuses(t, paths, inst) })
	for i, spec := range specs {
		t.Run(spec.Name, func(t *testing.T) {
			// Vary the drop-in dir: created by the installer, or already there with an operator's file.
			testInstallerOn(t, spec, paths, inst, i%2 == 0)
		})
	}
}

func testInstallerOn(t *testing.T, spec harness.CompatSpec, paths harness.Paths, inst string, operatorDropIn bool) {
	var etc, config string
	var before map[string]string
	wrapper, wrapperLog := "", ""
	node := harness.NodeDaemon(spec.DaemonSpec)
	d := harness.StartOnConfig(t, node, paths, func(d *harness.Daemon) string {
		etc = filepath.Join(d.Dir, "etc", "containerd")
		config = filepath.Join(etc, "config.toml")
		confd := filepath.Join(etc, "conf.d")
		mkdirAll(t, etc)
		writeFile(t, config, d.ConfigWithImports(filepath.Join(confd, "*.toml")), 0o600)
		if operatorDropIn {
			// An operator's drop-in, which must keep applying: the CRI's max log line size.
			mkdirAll(t, confd)
			writeFile(t, filepath.Join(confd, "10-operator.toml"), operatorDropInFor(node), 0o644)
		}
		before = shimtest.TreeSnapshot(t, etc)
		// The recording OCI runtime the handler is told to use (BinaryName).
		wrapper, wrapperLog = filepath.Join(d.Dir, "wrapper", "runc"), filepath.Join(d.Dir, "wrapper", "calls.log")
		mkdirAll(t, filepath.Dir(wrapper))
		writeFile(t, wrapper, "#!/bin/sh\necho \"$*\" >> "+wrapperLog+"\nexec "+paths.Runc()+" \"$@\"\n", 0o755)
		// The harness links our shim into the bin dir; on a node it is the installer's to put there.
		if err := os.Remove(d.ShimBin()); err != nil {
			t.Fatal(err)
		}
		out, code := runInstaller(t, inst, "install", "-config", config, "-bin-dir", filepath.Dir(d.ShimBin()),
			"-shim", paths.Shim, "-containerd", spec.Containerd, "-runtime-binary", wrapper)
		if code != 0 {
			t.Fatalf("install: exit %d\n%s", code, out)
		}
		checkInstalledDump(t, spec, config, confd, operatorDropIn)
		if !sameFileContent(t, d.ShimBin(), paths.Shim) {
			t.Fatalf("%s is not a copy of %s", d.ShimBin(), paths.Shim)
		}
		return config
	})

	c := harness.ConnectCRI(t, d)
	r := newCRIRow(t, c, harness.HandlerCustom)
	pod, podCfg := r.runPod("installed")
	id := r.run(pod, podCfg, containerConfig("app", "sleep", "3600"))
	if got := strings.TrimSpace(string(r.mustExecSync(id, 0, "echo", "through the installed handler").Stdout)); got != "through the installed handler" {
		t.Fatalf("exec output %q", got)
	}
	shim := r.shimOf(r.containerPid(id))
	if exe, err := os.Readlink(procExe(shim.Pid)); err != nil || exe != d.ShimBin() {
		t.Fatalf("the pod's shim runs %q (%v), want the installed %s", exe, err, d.ShimBin())
	}
	if calls, err := os.ReadFile(wrapperLog); err != nil || !strings.Contains(string(calls), "create") {
		t.Fatalf("the handler's OCI runtime (BinaryName %s) was not used: %q, %v", wrapper, calls, err)
	}
	r.removePod(pod)
	r.waitProcessGone(shim)

	out, code := runInstaller(t, inst, "uninstall", "-config", config)
	if code != 0 {
		t.Fatalf("uninstall: exit %d\n%s", code, out)
	}
	shimtest.SameTree(t, "config dir after uninstall", before, shimtest.TreeSnapshot(t, etc))
	if _, err := os.Lstat(d.ShimBin()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s still there after uninstall: %v", d.ShimBin(), err)
	}
	if table := handlerTable(configDump(t, spec.Containerd, config), harness.HandlerCustom); table != "" {
		t.Errorf("handler still in the config dump after uninstall:\n%s", table)
	}
}

// operatorDropInFor is an operator's own drop-in for the spec's line.
func operatorDropInFor(spec harness.DaemonSpec) string {
	if spec.ConfigVersion == 3 {
		return "version = 3\n[plugins.\"io.containerd.cri.v1.runtime\"]\n  max_container_log_line_size = 8193\n"
	}
	// 1.x replaces the CRI table with an imported one: an operator's 1.x drop-in can only set
	// other plugins' tables (or carry the whole CRI table). Here the opt plugin's path stays.
	return "version = 2\n[plugins.\"io.containerd.internal.v1.opt\"]\n  path = \"/opt/containerd-operator\"\n"
}

// checkInstalledDump checks containerd's view of the installed config: the handlers, the
// operator's settings, and 1.6's ConfigPath.
func checkInstalledDump(t *testing.T, spec harness.CompatSpec, config, confd string, operatorDropIn bool) {
	t.Helper()
	dump := configDump(t, spec.Containerd, config)
	custom := handlerTable(dump, harness.HandlerCustom)
	if !strings.Contains(custom, `runtime_type = "io.containerd.custom.v1"`) &&
		!strings.Contains(custom, `runtime_type = 'io.containerd.custom.v1'`) {
		t.Fatalf("config dump lacks the handler %s:\n%s", harness.HandlerCustom, dump)
	}
	if spec.Line == "1.6" {
		if !strings.Contains(custom, "ConfigPath = ") {
			t.Errorf("1.6 handler options must be a ConfigPath:\n%s", custom)
		}
	}
	sb := handlerTable(dump, harness.HandlerCustomSandboxed)
	switch {
	case spec.Line >= "2.3":
		if !strings.Contains(sb, "sandboxer = 'shim'") && !strings.Contains(sb, `sandboxer = "shim"`) {
			t.Errorf("config dump lacks the handler custom-sandboxed with sandboxer shim:\n%s", sb)
		}
		if wantPull := spec.Line >= "2.4"; strings.Contains(sb, "disable_pause_image_pull = true") != wantPull {
			t.Errorf("custom-sandboxed on %s: disable_pause_image_pull = true expected %v:\n%s", spec.Line, wantPull, sb)
		}
	case strings.Contains(sb, "runtime_type"):
		// 2.0-2.2 panic on the first RunPodSandbox of a sandboxer = "shim" handler.
		t.Errorf("custom-sandboxed installed on containerd %s:\n%s", spec.Line, sb)
	}
	// The operator's settings are all still there (the installer also checks the whole dump).
	for _, want := range []string{"restrict_oom_score_adj = true", harness.ImagePause.Ref} {
		if !strings.Contains(dump, want) {
			t.Errorf("config dump lost the operator's %q", want)
		}
	}
	if operatorDropIn {
		want := "max_container_log_line_size = 8193"
		if !strings.HasPrefix(spec.Line, "2.") {
			want = "/opt/containerd-operator"
		}
		if !strings.Contains(dump, want) {
			t.Errorf("config dump lost the operator's drop-in (%q)", want)
		}
	}
	if _, err := os.Stat(filepath.Join(confd, "containerd-shim-custom-v1.toml")); err != nil {
		t.Errorf("drop-in: %v", err)
	}
}

// testInstallerRefuses: a config whose imports cover no drop-in is refused (exit 2, the line to
// add printed), and nothing is changed or installed.
func testInstallerRefuses(t *testing.T, paths harness.Paths, inst string) {
	containerd := filepath.Join(paths.DepsBin, "containerd")
	harness.Require(t, harness.Executable(containerd), "%s is missing (run `make deps`)", containerd)
	dir := t.TempDir()
	etc, bin := filepath.Join(dir, "etc"), filepath.Join(dir, "bin")
	mkdirAll(t, etc)
	mkdirAll(t, bin)
	config := filepath.Join(etc, "config.toml")
	writeFile(t, config, "version = 3\nimports = []\nroot = \""+filepath.Join(dir, "root")+"\"\n", 0o644)
	before := shimtest.TreeSnapshot(t, dir)
	out, code := runInstaller(t, inst, "install", "-config", config, "-bin-dir", bin, "-shim", paths.Shim, "-containerd", containerd)
	if code != 2 || !strings.Contains(out, `imports = ["`+filepath.Join(etc, "conf.d", "*.toml")+`"]`) {
		t.Fatalf("install without an import: exit %d, want 2 and the imports line to add:\n%s", code, out)
	}
	shimtest.SameTree(t, "refused install", before, shimtest.TreeSnapshot(t, dir))
}

func mkdirAll(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}

func sameFileContent(t *testing.T, a, b string) bool {
	t.Helper()
	x, err1 := os.ReadFile(a)
	y, err2 := os.ReadFile(b)
	if err1 != nil || err2 != nil {
		t.Fatalf("read %s, %s: %v, %v", a, b, err1, err2)
	}
	return bytes.Equal(x, y)
}

// procExe is /proc/<pid>/exe.
func procExe(pid int) string { return fmt.Sprintf("/proc/%d/exe", pid) }
