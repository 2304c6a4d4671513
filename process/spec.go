//go:build linux

package process

import (
	"fmt"
	"path/filepath"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/custom-shim/containerd-shim-custom-v1/bundle"
)

// CheckSpec checks a bundle's OCI spec before anything is mounted or run, so that a bad bundle
// is InvalidArgument with a clear message instead of the OCI runtime's exit status.
func CheckSpec(spec *bundle.Spec) error {
	path := filepath.Join(spec.Dir(), bundle.ConfigFile)
	if spec.Process == nil {
		return fmt.Errorf("OCI spec %s has no process: %w", path, errdefs.ErrInvalidArgument)
	}
	p := spec.Process
	if err := ValidateProcess(&specs.Process{Args: p.Args, CommandLine: p.CommandLine, Cwd: p.Cwd}); err != nil {
		return fmt.Errorf("OCI spec %s: %w", path, err)
	}
	return nil
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
