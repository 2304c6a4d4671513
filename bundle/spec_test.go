//go:build linux

package bundle

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// A bundle that is no absolute path to a directory, or a spec that cannot be read or decoded,
// is InvalidArgument.
func TestRead(t *testing.T) {
	write := func(content string) string {
		dir := t.TempDir()
		if content != "" {
			if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	for _, tc := range []struct {
		name, bundle string
		ok           bool
	}{
		{"valid", write(`{"process":{"args":["true"],"cwd":"/"}}`), true},
		{"relative bundle", "bundle", false},
		{"missing bundle", "/nonexistent/bundle", false},
		{"no config.json", write(""), false},
		{"not JSON", write("{"), false},
		{"null", write("null"), false},
		{"mounts not a list", write(`{"mounts":{}}`), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Read(tc.bundle)
			if tc.ok != (err == nil) || (err != nil && !errdefs.IsInvalidArgument(err)) {
				t.Fatalf("Read: %v, want ok=%v or InvalidArgument", err, tc.ok)
			}
		})
	}
}

func TestHasOwnPIDNamespace(t *testing.T) {
	for _, tc := range []struct {
		linux *Linux
		want  bool
	}{
		{nil, true},
		{&Linux{}, false},
		{&Linux{Namespaces: []specs.LinuxNamespace{{Type: specs.PIDNamespace}}}, true},
		{&Linux{Namespaces: []specs.LinuxNamespace{{Type: specs.PIDNamespace, Path: "/proc/1/ns/pid"}}}, false},
	} {
		if got := (&Spec{Linux: tc.linux}).HasOwnPIDNamespace(); got != tc.want {
			t.Errorf("%+v: got %v, want %v", tc.linux, got, tc.want)
		}
	}
}

// The request's terminal is written into the bundle's spec when it differs; nothing else of the
// spec changes, fields the shim does not know included; an unchanged spec is not rewritten.
func TestSetTerminal(t *testing.T) {
	bundle := t.TempDir()
	const config = `{"ociVersion":"1.2.0","process":{"args":["sh"],"cwd":"/","env":["A=1"],"x-unknown":{"k":[1,2]}},"root":{"path":"rootfs"},"annotations":{"a":"b"}}`
	path := filepath.Join(bundle, "config.json")
	if err := os.WriteFile(path, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	spec, err := Read(bundle)
	if err != nil {
		t.Fatal(err)
	}
	if err := spec.SetTerminal(true); err != nil {
		t.Fatal(err)
	}
	if err := spec.Write(); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(path)
	var got, want map[string]any
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(config), &want); err != nil {
		t.Fatal(err)
	}
	want["process"].(map[string]any)["terminal"] = true
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("spec after SetTerminal(true):\n%s\nwant %v", raw, want)
	}
	if again, err := Read(bundle); err != nil || !again.Process.Terminal || !spec.Process.Terminal {
		t.Fatalf("terminal not set: %v %+v", err, again)
	}
	// Already so: the file is not touched.
	st, _ := os.Stat(path)
	if err := spec.SetTerminal(true); err != nil {
		t.Fatal(err)
	}
	if err := spec.Write(); err != nil {
		t.Fatal(err)
	}
	if st2, _ := os.Stat(path); !os.SameFile(st, st2) {
		t.Fatal("spec rewritten although it already had a terminal")
	}
	if err := spec.SetTerminal(false); err != nil {
		t.Fatal(err)
	}
	if err := spec.Write(); err != nil {
		t.Fatal(err)
	}
	if again, _ := Read(bundle); again.Process.Terminal {
		t.Fatal("terminal not cleared")
	}
}
