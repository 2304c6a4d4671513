//go:build linux

package manager

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Annotations, on a container's OCI spec, that make containers share one shim server.
// They are consulted in this order; without either a container gets its own server.
const (
	// SandboxIDAnnotation is set by containerd's CRI plugin to the pod sandbox id.
	SandboxIDAnnotation = "io.kubernetes.cri.sandbox-id"
	// GroupAnnotation groups containers outside Kubernetes, like runc-v2's "io.containerd.runc.v2.group".
	GroupAnnotation = "io.containerd.custom.v1.group"
)

// specAnnotations is the part of the OCI spec start needs; decoding only it keeps start fast.
type specAnnotations struct {
	Annotations map[string]string `json:"annotations,omitempty"`
}

// groupID returns the id of the shim group the container of bundle belongs to: the first
// grouping annotation of bundle/config.json that is set, else the container id. A bundle without
// a config.json is a sandbox's: containerd's sandbox controller (a CRI runtime handler with
// sandboxer = "shim") starts the shim on it before CreateSandbox; its group is its id, which its
// member containers name in their sandbox-id annotation.
func groupID(bundle, id string) (string, error) {
	path := filepath.Join(bundle, "config.json")
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return id, nil
	}
	if err != nil {
		return "", fmt.Errorf("read bundle spec: %w", err)
	}
	var s specAnnotations
	if err := json.Unmarshal(b, &s); err != nil {
		return "", fmt.Errorf("decode bundle spec %s: %w", path, err)
	}
	for _, key := range []string{SandboxIDAnnotation, GroupAnnotation} {
		if g := s.Annotations[key]; g != "" {
			return g, nil
		}
	}
	return id, nil
}
