//go:build linux

package process

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/containerd/containerd/api/types/runc/options"
	runtimeoptions "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"github.com/containerd/errdefs"
	"github.com/pelletier/go-toml/v2"
	"google.golang.org/protobuf/proto"

	ocibundle "github.com/custom-shim/containerd-shim-custom-v1/bundle"
)

// OptionsFile is the name, inside a bundle, of the JSON copy of the resolved runtime options.
// The delete action reads it to find the OCI runtime binary and root of a dead shim's container.
const OptionsFile = "options.json"

// Options is the runtime configuration this shim honours: the same fields as containerd's runc shim.
type Options struct {
	BinaryName    string `json:"binary_name,omitempty" toml:"BinaryName"`
	Root          string `json:"root,omitempty" toml:"Root"`
	SystemdCgroup bool   `json:"systemd_cgroup,omitempty" toml:"SystemdCgroup"`
	ShimCgroup    string `json:"shim_cgroup,omitempty" toml:"ShimCgroup"`
	IoUID         uint32 `json:"io_uid,omitempty" toml:"IoUid"`
	IoGID         uint32 `json:"io_gid,omitempty" toml:"IoGid"`
	NoPivotRoot   bool   `json:"no_pivot_root,omitempty" toml:"NoPivotRoot"`
	NoNewKeyring  bool   `json:"no_new_keyring,omitempty" toml:"NoNewKeyring"`
	CriuImagePath string `json:"criu_image_path,omitempty" toml:"CriuImagePath"`
	CriuWorkPath  string `json:"criu_work_path,omitempty" toml:"CriuWorkPath"`
}

// Type names (the last path element of an Any's type URL) of the option payloads we accept.
const (
	runcOptionsType    = "containerd.runc.v1.Options"
	criRuntimeOptsType = "runtimeoptions.v1.Options"
)

// DecodeOptions turns a runtime-options payload into Options, deciding by type URL:
// containerd's runc options, the CRI's runtimeoptions (a TOML body or a path to a TOML file,
// which is what a non-runc runtime type receives under Kubernetes), or nothing (defaults).
// Any other type is an InvalidArgument error naming the type.
func DecodeOptions(typeURL string, value []byte) (*Options, error) {
	name := typeURL[strings.LastIndex(typeURL, "/")+1:]
	switch name {
	case "":
		if len(value) != 0 {
			return nil, fmt.Errorf("runtime options without a type URL: %w", errdefs.ErrInvalidArgument)
		}
		return &Options{}, nil
	case runcOptionsType:
		var ro options.Options
		if err := proto.Unmarshal(value, &ro); err != nil {
			return nil, fmt.Errorf("decode runtime options %s: %v: %w", name, err, errdefs.ErrInvalidArgument) //nolint:errorlint // cause as text: one class in the chain
		}
		return fromRuncOptions(&ro), nil
	case criRuntimeOptsType:
		var co runtimeoptions.Options
		if err := proto.Unmarshal(value, &co); err != nil {
			return nil, fmt.Errorf("decode runtime options %s: %v: %w", name, err, errdefs.ErrInvalidArgument) //nolint:errorlint // cause as text: one class in the chain
		}
		return fromTOML(co.GetConfigBody(), co.GetConfigPath())
	default:
		return nil, fmt.Errorf("unsupported runtime options type %q (want %s or %s): %w",
			typeURL, runcOptionsType, criRuntimeOptsType, errdefs.ErrInvalidArgument)
	}
}

func fromRuncOptions(ro *options.Options) *Options {
	return &Options{
		BinaryName:    ro.GetBinaryName(),
		Root:          ro.GetRoot(),
		SystemdCgroup: ro.GetSystemdCgroup(),
		ShimCgroup:    ro.GetShimCgroup(),
		IoUID:         ro.GetIoUid(),
		IoGID:         ro.GetIoGid(),
		NoPivotRoot:   ro.GetNoPivotRoot(),
		NoNewKeyring:  ro.GetNoNewKeyring(),
		CriuImagePath: ro.GetCriuImagePath(),
		CriuWorkPath:  ro.GetCriuWorkPath(),
	}
}

// fromTOML decodes a CRI runtime handler's `options` table. The body wins over the path,
// as in containerd's CRI plugin, which fills both from the same config.
func fromTOML(body []byte, path string) (*Options, error) {
	if len(body) == 0 && path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("read runtime options file %s: %v: %w", path, err, errdefs.ErrInvalidArgument) //nolint:errorlint // cause as text: one class in the chain
		}
		body = b
	}
	var o Options
	if err := toml.Unmarshal(body, &o); err != nil {
		return nil, fmt.Errorf("decode runtime options TOML: %v: %w", err, errdefs.ErrInvalidArgument) //nolint:errorlint // cause as text: one class in the chain
	}
	return &o, nil
}

// WriteOptions persists o as bundle/options.json for the delete action.
func WriteOptions(bundle string, o *Options) error {
	b, err := json.Marshal(o)
	if err != nil {
		return err
	}
	return ocibundle.ReplaceFile(filepath.Join(bundle, OptionsFile), b, 0o600, false)
}

// ReadOptions reads bundle/options.json. A missing file gives default Options and no error:
// a shim may die before it wrote one.
func ReadOptions(bundle string) (*Options, error) {
	b, err := os.ReadFile(filepath.Join(bundle, OptionsFile))
	if errors.Is(err, os.ErrNotExist) {
		return &Options{}, nil
	}
	if err != nil {
		return nil, err
	}
	var o Options
	if err := json.Unmarshal(b, &o); err != nil {
		return nil, fmt.Errorf("decode %s: %w", filepath.Join(bundle, OptionsFile), err)
	}
	return &o, nil
}
