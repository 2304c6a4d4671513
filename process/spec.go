//go:build linux

package process

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Spec is the part of a bundle's OCI spec (config.json) that the shim reads; the OCI runtime
// reads the rest. Decoding into specs.Spec instead would have encoding/json build, and keep for
// the shim's lifetime, the field tables of every type of the OCI spec (~150 KiB of heap).
type Spec struct {
	Process     *SpecProcess      `json:"process,omitempty"`
	Linux       *SpecLinux        `json:"linux,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// SandboxIDAnnotation names the pod's sandbox; containerd's CRI plugin sets it on every
// container of a pod.
const SandboxIDAnnotation = "io.kubernetes.cri.sandbox-id"

// SpecProcess holds the fields of the spec's process that ValidateProcess checks, and whether
// it has a terminal.
type SpecProcess struct {
	Terminal    bool     `json:"terminal,omitempty"`
	Args        []string `json:"args,omitempty"`
	CommandLine string   `json:"commandLine,omitempty"`
	Cwd         string   `json:"cwd"`
}

// SpecLinux holds the namespaces of the spec's linux section.
type SpecLinux struct {
	Namespaces []specs.LinuxNamespace `json:"namespaces,omitempty"`
}

// ReadSpec reads and checks a bundle's OCI spec before anything is mounted or run, so that a
// bad bundle is InvalidArgument with a clear message instead of the OCI runtime's exit status.
func ReadSpec(bundle string) (*Spec, error) {
	if !filepath.IsAbs(bundle) {
		return nil, fmt.Errorf("bundle %q is not an absolute path: %w", bundle, errdefs.ErrInvalidArgument)
	}
	if fi, err := os.Stat(bundle); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("bundle %q is not a directory: %w", bundle, errdefs.ErrInvalidArgument)
	}
	path := filepath.Join(bundle, "config.json")
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read OCI spec: %v: %w", err, errdefs.ErrInvalidArgument) //nolint:errorlint // cause as text: one class in the chain
	}
	var spec Spec
	if err := json.Unmarshal(b, &spec); err != nil {
		return nil, fmt.Errorf("decode OCI spec %s: %v: %w", path, err, errdefs.ErrInvalidArgument) //nolint:errorlint // cause as text: one class in the chain
	}
	if spec.Process == nil {
		return nil, fmt.Errorf("OCI spec %s has no process: %w", path, errdefs.ErrInvalidArgument)
	}
	p := spec.Process
	if err := ValidateProcess(&specs.Process{Args: p.Args, CommandLine: p.CommandLine, Cwd: p.Cwd}); err != nil {
		return nil, fmt.Errorf("OCI spec %s: %w", path, err)
	}
	return &spec, nil
}

// ValidateProcess checks what the OCI runtime would refuse later with a less clear message.
func ValidateProcess(p *specs.Process) error {
	if len(p.Args) == 0 && p.CommandLine == "" {
		return fmt.Errorf("process has no args: %w", errdefs.ErrInvalidArgument)
	}
	if !filepath.IsAbs(p.Cwd) {
		return fmt.Errorf("process cwd %q is not absolute: %w", p.Cwd, errdefs.ErrInvalidArgument)
	}
	return nil
}

// setTerminal makes the bundle's spec give its process a terminal, or not: the request that
// creates a container decides (CreateTaskRequest.terminal, as an exec's request does), and the
// OCI runtime refuses a console socket for a spec without a terminal, or no console socket for
// one with. Only process.terminal changes; every other byte of the spec is kept as it was
// written, in its order. A no-op when the spec already says so.
func setTerminal(bundle string, spec *Spec, terminal bool) error {
	if spec.Process.Terminal == terminal {
		return nil
	}
	path := filepath.Join(bundle, "config.json")
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read OCI spec: %w", err)
	}
	out, err := setJSONField(raw, terminal, "process", "terminal")
	if err != nil {
		return fmt.Errorf("set process.terminal in %s: %v: %w", path, err, errdefs.ErrInvalidArgument) //nolint:errorlint // cause as text: one class in the chain
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, out, 0o644); err != nil { //nolint:gosec // the bundle's config.json, which containerd wrote world-readable
		return fmt.Errorf("write OCI spec: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write OCI spec: %w", err)
	}
	spec.Process.Terminal = terminal
	return nil
}

// setJSONField sets the member at path (object keys) of the JSON document raw to value, keeping
// the other members as they are (their raw bytes; encoding/json sorts the keys of the objects on
// the way).
func setJSONField(raw []byte, value any, path ...string) ([]byte, error) {
	if len(path) == 0 {
		return json.Marshal(value)
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, err
	}
	if obj == nil {
		obj = map[string]json.RawMessage{}
	}
	inner := obj[path[0]]
	if len(inner) == 0 || string(inner) == "null" {
		inner = []byte("{}")
	}
	v, err := setJSONField(inner, value, path[1:]...)
	if err != nil {
		return nil, err
	}
	obj[path[0]] = v
	return json.Marshal(obj)
}

// hasOwnPIDNamespace reports whether the spec gives the container a new PID namespace: if not,
// its processes outlive its init.
func hasOwnPIDNamespace(spec *Spec) bool {
	if spec.Linux == nil {
		return true
	}
	for _, ns := range spec.Linux.Namespaces {
		if ns.Type == specs.PIDNamespace {
			return ns.Path == ""
		}
	}
	return false
}
