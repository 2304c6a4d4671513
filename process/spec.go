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
	Process *SpecProcess `json:"process,omitempty"`
	Linux   *SpecLinux   `json:"linux,omitempty"`
}

// SpecProcess holds the fields of the spec's process that ValidateProcess checks.
type SpecProcess struct {
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
		return nil, fmt.Errorf("read OCI spec: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	var spec Spec
	if err := json.Unmarshal(b, &spec); err != nil {
		return nil, fmt.Errorf("decode OCI spec %s: %v: %w", path, err, errdefs.ErrInvalidArgument)
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
