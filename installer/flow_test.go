//go:build linux

package installer

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pelletier/go-toml/v2"

	"github.com/custom-shim/containerd-shim-custom-v1/internal/shimtest"
)

// fakeContainerd models how containerd loads a config (the real daemons are in the integration
// tests, tests/installer_test.go): it follows the imports of every file it loads, merges tables
// key by key on 2.x and replaces a plugin's whole table on 1.x, over a default CRI table with a
// runc runtime (replaced whole when a config names runtimes, as 1.x's decoding does).
type fakeContainerd struct {
	line Line
	// ignore, if set, makes Dump skip files whose name contains it (a containerd that does
	// not load the drop-in).
	ignore string
	dumps  int
}

func (f *fakeContainerd) Version(context.Context) (string, error) {
	return "containerd github.com/containerd/containerd v" + f.line.String() + ".0 fake\n", nil
}

func (f *fakeContainerd) Dump(_ context.Context, path string) ([]byte, error) {
	f.dumps++
	merged := map[string]any{}
	pending, loaded := []string{path}, map[string]bool{}
	for len(pending) > 0 {
		p := pending[0]
		pending = pending[1:]
		if loaded[p] || (f.ignore != "" && strings.Contains(p, f.ignore)) {
			continue
		}
		loaded[p] = true
		raw, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		var doc map[string]any
		if err := toml.Unmarshal(raw, &doc); err != nil {
			return nil, err
		}
		imports, _ := doc["imports"].([]any)
		delete(doc, "imports")
		if f.line.mergesPluginTables() {
			mergeDeep(merged, doc)
		} else {
			plugins, _ := doc["plugins"].(map[string]any)
			delete(doc, "plugins")
			mergeDeep(merged, doc)
			if merged["plugins"] == nil {
				merged["plugins"] = map[string]any{}
			}
			for k, v := range plugins {
				merged["plugins"].(map[string]any)[k] = v // replaced whole
			}
		}
		for _, imp := range imports {
			s := imp.(string)
			if !filepath.IsAbs(s) {
				s = filepath.Join(filepath.Dir(p), s)
			}
			matches, _ := filepath.Glob(s)
			pending = append(pending, matches...)
		}
	}
	defaults := map[string]any{"sandbox_image": "default/pause", "containerd": map[string]any{
		"default_runtime_name": "runc",
		"runtimes":             map[string]any{"runc": map[string]any{"runtime_type": "io.containerd.runc.v2"}},
	}}
	cri, _ := lookup(merged, "plugins", f.line.criPlugin()).(map[string]any)
	if rts := lookup(cri, "containerd", "runtimes"); rts != nil {
		delete(defaults["containerd"].(map[string]any), "runtimes")
	}
	mergeDeep(defaults, cri)
	if merged["plugins"] == nil {
		merged["plugins"] = map[string]any{}
	}
	merged["plugins"].(map[string]any)[f.line.criPlugin()] = defaults
	return toml.Marshal(merged)
}

func mergeDeep(dst, src map[string]any) {
	for k, v := range src {
		if sv, ok := v.(map[string]any); ok {
			if dv, ok := dst[k].(map[string]any); ok {
				mergeDeep(dv, sv)
				continue
			}
			dst[k] = deepCopy(sv)
			continue
		}
		dst[k] = v
	}
}

// node is a fake node: a config dir and a bin dir in a temp dir, and a shim binary to install.
type node struct {
	dir, config, bin, shim string
}

func newNode(t *testing.T, config string) *node {
	t.Helper()
	dir := t.TempDir()
	n := &node{dir: dir, config: filepath.Join(dir, "etc", "config.toml"), bin: filepath.Join(dir, "bin"),
		shim: filepath.Join(dir, "release", ShimName)}
	for _, d := range []string{filepath.Dir(n.config), n.bin, filepath.Dir(n.shim)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	config = strings.ReplaceAll(config, "@ETC@", filepath.Dir(n.config))
	if err := os.WriteFile(n.config, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(n.shim, []byte("#!/bin/sh\necho shim\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return n
}

func (n *node) options() Options {
	return Options{Config: n.config, BinDir: n.bin, Shim: n.shim, SystemdCgroup: "auto", RestartCommand: "false"}
}

const v3Config = `version = 3
imports = ["@ETC@/conf.d/*.toml"]
[plugins."io.containerd.cri.v1.runtime"]
  restrict_oom_score_adj = true
[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
  SystemdCgroup = true
`

const v2Config = `version = 2
imports = ["conf.d/*.toml"]
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "operator/pause:1"
`

func TestInstallUninstall(t *testing.T) {
	ctx := context.Background()
	for _, tt := range []struct {
		line, config string
		preDir       bool // the operator has the drop-in dir already
	}{
		{"2.4", v3Config, true}, {"2.2", v3Config, false}, {"1.7", v2Config, false}, {"1.6", v2Config, true},
	} {
		t.Run(tt.line, func(t *testing.T) {
			l, _ := ParseLine(tt.line)
			n := newNode(t, tt.config)
			if tt.preDir {
				if err := os.Mkdir(filepath.Join(filepath.Dir(n.config), "conf.d"), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			etc := shimtest.TreeSnapshot(t, filepath.Dir(n.config))
			c := &fakeContainerd{line: l}
			var out bytes.Buffer
			o := n.options()
			o.Out = &out
			if err := Install(ctx, o, c); err != nil {
				t.Fatalf("install: %v\n%s", err, out.String())
			}
			raw, _ := c.Dump(ctx, n.config)
			d, _ := parseDump(l, raw)
			for _, h := range HandlersFor(l) {
				if lookup(d.runtimes(), h, "runtime_type") != RuntimeType {
					t.Errorf("handler %s not in the dump:\n%s", h, raw)
				}
			}
			if l.mergesPluginTables() {
				if lookup(d.runtimes(), HandlerCustom, "options", "SystemdCgroup") != true {
					t.Errorf("auto systemd cgroup did not follow runc's: %v", lookup(d.runtimes(), HandlerCustom))
				}
			} else if lookup(d.criTable(), "sandbox_image") != "operator/pause:1" {
				t.Errorf("1.x lost the operator's CRI setting:\n%s", raw)
			}
			if got, _ := os.ReadFile(filepath.Join(n.bin, ShimName)); string(got) != "#!/bin/sh\necho shim\n" {
				t.Errorf("binary not installed: %q", got)
			}
			// Again: nothing changes, and it says so.
			out.Reset()
			if err := Install(ctx, o, c); err != nil || !strings.Contains(out.String(), "(unchanged)") {
				t.Errorf("second install: %v\n%s", err, out.String())
			}
			if err := Uninstall(ctx, o); err != nil {
				t.Fatal(err)
			}
			shimtest.SameTree(t, "uninstall after install", etc, shimtest.TreeSnapshot(t, filepath.Dir(n.config)))
			if _, err := os.Stat(filepath.Join(n.bin, ShimName)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("binary left after uninstall: %v", err)
			}
		})
	}
}

func TestInstallRefusals(t *testing.T) {
	ctx := context.Background()
	l := Line{2, 4}
	tests := []struct {
		name, config string
		prepare      func(n *node)
		want         string
	}{
		{"no imports", "version = 3\n", nil, `imports = ["`},
		{"imports elsewhere", "version = 3\nimports = [\"/opt/x.toml\"]\n", nil, `"/opt/x.toml", "`},
		{"no config", "", func(n *node) { os.Remove(n.config) }, "no containerd config"},
		{"version 1", "version = 1\nimports = [\"conf.d/*.toml\"]\n", nil, "version 1"},
		{"handler taken", v3Config + "[plugins.\"io.containerd.cri.v1.runtime\".containerd.runtimes.custom]\n  runtime_type = \"x\"\n", nil, "already defines"},
		{"foreign drop-in", v3Config, func(n *node) {
			dir := filepath.Join(filepath.Dir(n.config), "conf.d")
			_ = os.Mkdir(dir, 0o755)
			_ = os.WriteFile(filepath.Join(dir, DropInName), []byte("version = 3\n"), 0o644)
		}, "not written by this installer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := newNode(t, tt.config)
			if tt.prepare != nil {
				tt.prepare(n)
			}
			etc := shimtest.TreeSnapshot(t, n.dir)
			err := Install(ctx, n.options(), &fakeContainerd{line: l})
			if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("install: %v; want a refusal saying %q", err, tt.want)
			}
			shimtest.SameTree(t, "refused install", etc, shimtest.TreeSnapshot(t, n.dir))
		})
	}
}

// TestInstallRollsBack: a containerd that does not load the drop-in makes install fail and put
// everything back, also an earlier install's drop-in.
func TestInstallRollsBack(t *testing.T) {
	ctx := context.Background()
	n := newNode(t, v2Config)
	o := n.options()
	if err := Install(ctx, o, &fakeContainerd{line: Line{1, 6}}); err != nil {
		t.Fatal(err)
	}
	etc := shimtest.TreeSnapshot(t, n.dir)
	if err := os.WriteFile(n.shim, []byte("#!/bin/sh\necho new shim\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	o.BinaryName = "crun" // a different options file
	err := Install(ctx, o, &fakeContainerd{line: Line{1, 6}, ignore: DropInName})
	if err == nil || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("install with a containerd that ignores the drop-in: %v", err)
	}
	after := shimtest.TreeSnapshot(t, n.dir)
	after[n.shim] = etc[n.shim] // the source binary was changed by the test
	shimtest.SameTree(t, "rolled-back install", etc, after)
}

func TestInstallDryRun(t *testing.T) {
	n := newNode(t, v3Config)
	etc := shimtest.TreeSnapshot(t, n.dir)
	var out bytes.Buffer
	o := n.options()
	o.DryRun, o.Out = true, &out
	if err := Install(context.Background(), o, &fakeContainerd{line: Line{2, 4}}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "runtimes.custom]") {
		t.Errorf("dry run did not print the drop-in:\n%s", out.String())
	}
	shimtest.SameTree(t, "dry run", etc, shimtest.TreeSnapshot(t, n.dir))
}

// TestUninstallRefusesWhileRunning: a process running from the installed binary (even after it
// was replaced) blocks uninstall unless forced.
func TestUninstallRefusesWhileRunning(t *testing.T) {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep binary")
	}
	ctx := context.Background()
	n := newNode(t, v3Config)
	b, err := os.ReadFile(sleep)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(n.shim, b, 0o755); err != nil {
		t.Fatal(err)
	}
	o := n.options()
	if err := Install(ctx, o, &fakeContainerd{line: Line{2, 4}}); err != nil {
		t.Fatal(err)
	}
	installed := filepath.Join(n.bin, ShimName)
	cmd := exec.Command(installed, "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	deadline := time.Now().Add(5 * time.Second)
	for len(runningFrom(installed)) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if err := Uninstall(ctx, o); !errors.Is(err, ErrRefused) {
		t.Fatalf("uninstall with a shim running: %v", err)
	}
	o.Force = true
	if err := Uninstall(ctx, o); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(installed); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("forced uninstall left the binary: %v", err)
	}
	if pids := runningFrom(installed); len(pids) != 1 || pids[0] != cmd.Process.Pid {
		t.Fatalf("runningFrom after removal = %v, want [%d] (a deleted executable)", pids, cmd.Process.Pid)
	}
}

// TestInstallBinaryAtomic: replacing the binary gives it a new inode, so a process holding the
// old one keeps it; an identical binary is not rewritten.
func TestInstallBinaryAtomic(t *testing.T) {
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
	for i, content := range []string{"one", "two"} {
		if err := os.WriteFile(src, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		sum, _ := fileSHA256(src)
		var before os.FileInfo
		if i > 0 {
			before, _ = os.Stat(dst)
		}
		replaced, err := installBinary(src, dst, sum)
		if err != nil || !replaced {
			t.Fatalf("install %q: %v, replaced %v", content, err, replaced)
		}
		after, _ := os.Stat(dst)
		if after.Mode().Perm() != 0o755 {
			t.Errorf("mode %v", after.Mode())
		}
		if before != nil && os.SameFile(before, after) {
			t.Error("binary rewritten in place: a running shim's inode changed under it")
		}
		if replaced, err := installBinary(src, dst, sum); err != nil || replaced {
			t.Errorf("same binary again: %v, replaced %v", err, replaced)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("temp files left: %v", entries)
	}
}
