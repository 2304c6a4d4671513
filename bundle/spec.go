//go:build linux

package bundle

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// The annotations the shim goes by.
const (
	// SandboxIDAnnotation names the pod's sandbox: containerd's CRI plugin sets it on every
	// container of a pod (the shim groups a pod's containers by it, and a pause-less pod's
	// members get the pod's files by it).
	SandboxIDAnnotation = "io.kubernetes.cri.sandbox-id"
	// GroupAnnotation groups containers into one shim outside Kubernetes, like
	// containerd-shim-runc-v2's "io.containerd.runc.v2.group".
	GroupAnnotation = "io.containerd.custom.v1.group"
)

// ConfigFile is the bundle's OCI spec.
const ConfigFile = "config.json"

// Spec is a bundle's OCI spec as the shim reads and changes it: the fields it reads, decoded
// (the OCI runtime reads the rest; decoding into specs.Spec would have encoding/json build, and
// keep for the shim's life, the field tables of every type of the OCI spec, ~150 KiB of heap),
// and the whole document as it was written, which Write writes back with the shim's changes
// only (every other member keeps its bytes; encoding/json sorts the keys of the objects it
// re-encodes).
type Spec struct {
	Process     *Process          `json:"process,omitempty"`
	Root        *Root             `json:"root,omitempty"`
	Linux       *Linux            `json:"linux,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`

	dir    string
	doc    map[string]json.RawMessage
	mounts []json.RawMessage
	dirty  bool
}

// Process holds the fields of the spec's process the shim reads.
type Process struct {
	Terminal    bool     `json:"terminal,omitempty"`
	Args        []string `json:"args,omitempty"`
	CommandLine string   `json:"commandLine,omitempty"`
	Cwd         string   `json:"cwd"`
}

// Root holds whether the container's root is read-only.
type Root struct {
	Readonly bool `json:"readonly"`
}

// Linux holds the namespaces of the spec's linux section.
type Linux struct {
	Namespaces []specs.LinuxNamespace `json:"namespaces,omitempty"`
}

// Mount is an OCI mount: the fields the shim writes or reads, in the spec's field order.
type Mount struct {
	Destination string   `json:"destination"`
	Type        string   `json:"type,omitempty"`
	Source      string   `json:"source,omitempty"`
	Options     []string `json:"options,omitempty"`
}

// Read reads the OCI spec of the bundle at dir. A bundle that is not an absolute path to a
// directory, or a spec that cannot be read or decoded, is InvalidArgument.
func Read(dir string) (*Spec, error) {
	if !filepath.IsAbs(dir) {
		return nil, fmt.Errorf("bundle %q is not an absolute path: %w", dir, errdefs.ErrInvalidArgument)
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("bundle %q is not a directory: %w", dir, errdefs.ErrInvalidArgument)
	}
	path := filepath.Join(dir, ConfigFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read OCI spec: %v: %w", err, errdefs.ErrInvalidArgument) //nolint:errorlint // cause as text: one class in the chain
	}
	s := &Spec{dir: dir}
	if err := s.decode(b); err != nil {
		return nil, fmt.Errorf("decode OCI spec %s: %v: %w", path, err, errdefs.ErrInvalidArgument) //nolint:errorlint // cause as text: one class in the chain
	}
	return s, nil
}

func (s *Spec) decode(b []byte) error {
	if err := json.Unmarshal(b, &s.doc); err != nil {
		return err
	}
	if s.doc == nil {
		return errors.New("spec is null")
	}
	if err := json.Unmarshal(b, s); err != nil {
		return err
	}
	if m := s.doc["mounts"]; len(m) > 0 {
		return json.Unmarshal(m, &s.mounts)
	}
	return nil
}

// Dir is the bundle's directory.
func (s *Spec) Dir() string { return s.dir }

// Mounts decodes the spec's mounts (the fields of Mount).
func (s *Spec) Mounts() ([]Mount, error) {
	out := make([]Mount, len(s.mounts))
	for i, m := range s.mounts {
		if err := json.Unmarshal(m, &out[i]); err != nil {
			return nil, fmt.Errorf("mount %d: %v: %w", i, err, errdefs.ErrInvalidArgument) //nolint:errorlint // cause as text: one class in the chain
		}
	}
	return out, nil
}

// SetMount replaces the spec's mount i with m (the index of Mounts).
func (s *Spec) SetMount(i int, m Mount) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	s.mounts[i], s.dirty = b, true
	return nil
}

// AddMount appends m to the spec's mounts.
func (s *Spec) AddMount(m Mount) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	s.mounts, s.dirty = append(s.mounts, b), true
	return nil
}

// SetTerminal gives the spec's process a terminal, or not (the request that creates a container
// decides, as an exec's request does: the OCI runtime refuses a console socket for a spec
// without a terminal, or no console socket for one with). A no-op when the spec says so already.
func (s *Spec) SetTerminal(terminal bool) error {
	if s.Process == nil || s.Process.Terminal == terminal {
		return nil
	}
	var proc map[string]json.RawMessage
	if err := json.Unmarshal(s.doc["process"], &proc); err != nil {
		return fmt.Errorf("set process.terminal: %v: %w", err, errdefs.ErrInvalidArgument) //nolint:errorlint // cause as text: one class in the chain
	}
	b, err := json.Marshal(terminal)
	if err != nil {
		return err
	}
	proc["terminal"] = b
	if s.doc["process"], err = json.Marshal(proc); err != nil {
		return err
	}
	s.Process.Terminal, s.dirty = terminal, true
	return nil
}

// Write writes the spec back to config.json, atomically, if the shim changed it (its mode kept).
func (s *Spec) Write() error {
	if !s.dirty {
		return nil
	}
	if len(s.mounts) > 0 {
		b, err := json.Marshal(s.mounts)
		if err != nil {
			return err
		}
		s.doc["mounts"] = b
	}
	out, err := json.Marshal(s.doc)
	if err != nil {
		return fmt.Errorf("encode OCI spec: %w", err)
	}
	path := filepath.Join(s.dir, ConfigFile)
	mode := os.FileMode(0o644) // containerd writes it world-readable
	if fi, err := os.Stat(path); err == nil {
		mode = fi.Mode().Perm()
	}
	if err := ReplaceFile(path, out, mode, false); err != nil {
		return err
	}
	s.dirty = false
	return nil
}

// Annotation returns the annotation key of the spec, "" if unset.
func (s *Spec) Annotation(key string) string { return s.Annotations[key] }

// HasOwnPIDNamespace reports whether the spec gives the container a new PID namespace: if not,
// its processes outlive its init.
func (s *Spec) HasOwnPIDNamespace() bool {
	if s.Linux == nil {
		return true
	}
	for _, ns := range s.Linux.Namespaces {
		if ns.Type == specs.PIDNamespace {
			return ns.Path == ""
		}
	}
	return false
}
