//go:build linux

package installer

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/pelletier/go-toml/v2"
)

func TestParseVersionOutput(t *testing.T) {
	tests := []struct {
		out, version string
		line         Line
	}{
		{"containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+deb12u3\n", "1.6.20~ds1", Line{1, 6}},
		{"containerd github.com/containerd/containerd v1.7.35 1b2c3d\n", "v1.7.35", Line{1, 7}},
		{"containerd containerd.io 1.7.27 05044ec0a9a75232cad458027ca83437aae3f4da\n", "1.7.27", Line{1, 7}},
		{"containerd github.com/containerd/containerd/v2 v2.2.9 compat\n", "v2.2.9", Line{2, 2}},
		{"containerd github.com/containerd/containerd/v2 2.4.2+unknown \n", "2.4.2+unknown", Line{2, 4}},
	}
	for _, tt := range tests {
		l, v, err := ParseVersionOutput(tt.out)
		if err != nil || l != tt.line || v != tt.version {
			t.Errorf("ParseVersionOutput(%q) = %v, %q, %v; want %v, %q", tt.out, l, v, err, tt.line, tt.version)
		}
	}
	for _, bad := range []string{"", "runc version 1.5.2", "containerd github.com/containerd/containerd unknown"} {
		if _, _, err := ParseVersionOutput(bad); err == nil {
			t.Errorf("ParseVersionOutput(%q): no error", bad)
		}
	}
}

func TestLineSupported(t *testing.T) {
	for s, want := range map[string]bool{"1.5": false, "1.6": true, "1.7": true, "2.0": true, "2.4": true, "2.9": true, "3.0": false} {
		l, err := ParseLine(s)
		if err != nil || l.Supported() != want {
			t.Errorf("%s: Supported() = %v (%v), want %v", s, l.Supported(), err, want)
		}
	}
}

func TestDropInPath(t *testing.T) {
	const cfg = "/etc/containerd/config.toml"
	tests := []struct {
		name    string
		imports []string
		want    string
	}{
		{"none", nil, ""},
		{"empty", []string{}, ""},
		{"conf.d glob", []string{"/etc/containerd/conf.d/*.toml"}, "/etc/containerd/conf.d/" + DropInName},
		{"relative glob", []string{"conf.d/*.toml"}, "/etc/containerd/conf.d/" + DropInName},
		{"first match wins", []string{"/opt/a.toml", "/etc/x/*.toml", "/etc/y/*.toml"}, "/etc/x/" + DropInName},
		{"glob that does not match the name", []string{"/etc/containerd/conf.d/*.conf"}, ""},
		{"exact file", []string{"/etc/containerd/runtimes/" + DropInName}, "/etc/containerd/runtimes/" + DropInName},
		{"other exact file", []string{"/etc/containerd/runtimes/other.toml"}, ""},
		{"wildcard directory", []string{"/etc/containerd/*/*.toml"}, ""},
		{"prefix glob", []string{"/etc/containerd/conf.d/containerd-*"}, "/etc/containerd/conf.d/" + DropInName},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := DropInPath(cfg, tt.imports); got != tt.want {
				t.Fatalf("DropInPath(%v) = %q, want %q", tt.imports, got, tt.want)
			}
		})
	}
}

func TestRecordRoundTrip(t *testing.T) {
	for _, l := range []Line{{1, 6}, {2, 4}} {
		r := Record{Installer: "v0.1.0", Line: l.String(), Binary: "/usr/local/bin/" + ShimName,
			BinarySHA256: strings.Repeat("ab", 32), OptionsFile: "/etc/containerd/o.toml", CreatedDir: "/etc/containerd/conf.d"}
		got, ok := parseRecord([]byte(r.header(l) + "\nversion = 3\n"))
		if !ok || got != r {
			t.Fatalf("%s: parseRecord = %+v, %v; want %+v", l, got, ok, r)
		}
	}
	if _, ok := parseRecord([]byte("version = 3\n# custom-shim-install: binary = /x\n")); ok {
		t.Fatal("a file without the marker line was taken for ours")
	}
}

// decode parses rendered TOML (the header is comments).
func decode(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := toml.Unmarshal(b, &m); err != nil {
		t.Fatalf("rendered TOML does not parse: %v\n%s", err, b)
	}
	return m
}

func TestRenderByLine(t *testing.T) {
	operatorCRI := map[string]any{
		"sandbox_image": "example/pause:1",
		"containerd": map[string]any{
			"default_runtime_name": "runc",
			"runtimes":             map[string]any{"runc": map[string]any{"runtime_type": "io.containerd.runc.v2"}},
		},
	}
	opts := RuntimeOptions{SystemdCgroup: true, BinaryName: "crun"}
	tests := []struct {
		line    string
		version int64
		plugin  string
		check   func(t *testing.T, cri map[string]any)
	}{
		{"2.4", 3, "io.containerd.cri.v1.runtime", func(t *testing.T, cri map[string]any) {
			if len(cri) != 1 {
				t.Errorf("2.x drop-in carries more than the handlers: %v", cri)
			}
			sb := lookup(cri, "containerd", "runtimes", HandlerSandboxed).(map[string]any)
			if sb["sandboxer"] != "shim" || sb["disable_pause_image_pull"] != true {
				t.Errorf("sandboxed handler on 2.4: %v", sb)
			}
			if got := lookup(cri, "containerd", "runtimes", HandlerCustom, "options"); !reflect.DeepEqual(got, map[string]any{"SystemdCgroup": true, "BinaryName": "crun"}) {
				t.Errorf("options: %v", got)
			}
		}},
		{"2.3", 3, "io.containerd.cri.v1.runtime", func(t *testing.T, cri map[string]any) {
			sb := lookup(cri, "containerd", "runtimes", HandlerSandboxed).(map[string]any)
			if _, ok := sb["disable_pause_image_pull"]; ok || sb["sandboxer"] != "shim" {
				t.Errorf("sandboxed handler on 2.3 (no disable_pause_image_pull before 2.4): %v", sb)
			}
		}},
		{"2.2", 3, "io.containerd.cri.v1.runtime", func(t *testing.T, cri map[string]any) {
			// 2.0-2.2 panic on RunPodSandbox of a sandboxer = "shim" handler: not installed.
			if sb := lookup(cri, "containerd", "runtimes", HandlerSandboxed); sb != nil {
				t.Errorf("sandboxed handler on 2.2: %v", sb)
			}
		}},
		{"1.7", 2, "io.containerd.grpc.v1.cri", func(t *testing.T, cri map[string]any) {
			if cri["sandbox_image"] != "example/pause:1" || lookup(cri, "containerd", "runtimes", "runc") == nil {
				t.Errorf("1.x drop-in lost the operator's CRI table: %v", cri)
			}
			if got := lookup(cri, "containerd", "runtimes", HandlerCustom, "options", "BinaryName"); got != "crun" {
				t.Errorf("1.7 options inline: %v", got)
			}
		}},
		{"1.6", 2, "io.containerd.grpc.v1.cri", func(t *testing.T, cri map[string]any) {
			if got := lookup(cri, "containerd", "runtimes", HandlerCustom, "options"); !reflect.DeepEqual(got, map[string]any{"ConfigPath": "/etc/containerd/" + OptionsName}) {
				t.Errorf("1.6 options must be ConfigPath only: %v", got)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			l, _ := ParseLine(tt.line)
			d := &dropIn{line: l, handlers: HandlersFor(l), options: opts, criTable: operatorCRI,
				optionsFile: "/etc/containerd/" + OptionsName, record: Record{Line: tt.line}}
			b, err := d.render()
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := parseRecord(b); !ok {
				t.Fatalf("rendered drop-in lacks the marker:\n%s", b)
			}
			doc := decode(t, b)
			if doc["version"] != tt.version {
				t.Errorf("version = %v, want %d", doc["version"], tt.version)
			}
			cri, _ := lookup(doc, "plugins", tt.plugin).(map[string]any)
			if cri == nil {
				t.Fatalf("no %s table:\n%s", tt.plugin, b)
			}
			for _, h := range HandlersFor(l) {
				if lookup(cri, "containerd", "runtimes", h, "runtime_type") != RuntimeType {
					t.Errorf("handler %s missing:\n%s", h, b)
				}
			}
			tt.check(t, cri)
			again, _ := d.render()
			if string(again) != string(b) {
				t.Error("two renders differ (keys must be sorted)")
			}
		})
	}
	if _, ok := operatorCRI["containerd"].(map[string]any)["runtimes"].(map[string]any)[HandlerCustom]; ok {
		t.Error("render changed the dump's table it copied")
	}
}

func TestCheckHandlers(t *testing.T) {
	if err := checkHandlers(Line{1, 6}, []string{HandlerSandboxed}); !errors.Is(err, ErrRefused) {
		t.Errorf("sandboxed handler on 1.6: %v", err)
	}
	if err := checkHandlers(Line{2, 4}, []string{"custm"}); !errors.Is(err, ErrRefused) {
		t.Errorf("a typo: %v", err)
	}
	if err := checkHandlers(Line{2, 2}, []string{HandlerSandboxed}); !errors.Is(err, ErrRefused) {
		t.Errorf("sandboxed handler on 2.2 (its sandbox controller panics on it): %v", err)
	}
	if err := checkHandlers(Line{2, 3}, []string{HandlerCustom, HandlerSandboxed}); err != nil {
		t.Error(err)
	}
}

func TestDifferences(t *testing.T) {
	a := map[string]any{"x": int64(1), "t": map[string]any{"k": "v", "gone": true}}
	b := map[string]any{"x": int64(2), "t": map[string]any{"k": "v", "new": int64(3)}}
	got := differences("", a, b)
	want := []string{"t.gone removed", "t.new added", "x 1 → 2"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("differences = %q, want %q", got, want)
	}
}
