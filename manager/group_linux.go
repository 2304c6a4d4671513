//go:build linux

package manager

import (
	"errors"
	"os"
	"path/filepath"

	"github.com/custom-shim/containerd-shim-custom-v1/bundle"
)

// groupID returns the id of the shim group the container of dir belongs to: the first grouping
// annotation of its OCI spec that is set (bundle.SandboxIDAnnotation, then
// bundle.GroupAnnotation), else the container id. A bundle without a config.json is a
// sandbox's: containerd's sandbox controller (a CRI runtime handler with sandboxer = "shim")
// starts the shim on it before CreateSandbox; its group is its id, which its member containers
// name in their sandbox-id annotation.
func groupID(dir, id string) (string, error) {
	if _, err := os.Stat(filepath.Join(dir, bundle.ConfigFile)); errors.Is(err, os.ErrNotExist) {
		return id, nil
	}
	spec, err := bundle.Read(dir)
	if err != nil {
		return "", err
	}
	for _, key := range []string{bundle.SandboxIDAnnotation, bundle.GroupAnnotation} {
		if g := spec.Annotation(key); g != "" {
			return g, nil
		}
	}
	return id, nil
}
