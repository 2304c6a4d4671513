//go:build linux

package manager

import (
	"errors"
	"fmt"

	bootstrap "github.com/containerd/containerd/api/runtime/bootstrap/v1"
	"github.com/containerd/containerd/api/types/runc/options"
	runtimeoptions "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/custom-shim/containerd-shim-custom-v1/process"
)

// startRequest is what a start invocation asked for, in whichever protocol it arrived.
type startRequest struct {
	// params is set for the new protocol (containerd ≥ 2.3): a BootstrapParams naming the
	// same instance and namespace as the command line.
	params *bootstrap.BootstrapParams
	// options holds the legacy protocol's runtime options; nil when stdin was empty.
	options *anypb.Any
}

// errBootstrapMismatch reports BootstrapParams that name another instance or namespace than the
// command line: containerd and the shim disagree about which shim this is.
var errBootstrapMismatch = errors.New("bootstrap parameters do not match the command line")

// errBadStartInput reports stdin that is neither BootstrapParams nor a runtime-options Any.
var errBadStartInput = errors.New("start input is neither bootstrap parameters nor runtime options")

// parseStartInput decides which protocol stdin speaks. Empty input is legacy (no options).
// Input that decodes as BootstrapParams with InstanceID == id and Namespace == ns is the new
// protocol. A legacy Any also decodes as BootstrapParams (its type_url and value land in fields
// 1 and 2, instance_id and namespace), so a mismatch means legacy unless a field an Any cannot
// have (3 and up) is set: then it is a bootstrap payload for another shim, an error.
// Anything else must be a google.protobuf.Any without unknown fields.
func parseStartInput(input []byte, id, ns string) (*startRequest, error) {
	if len(input) == 0 {
		return &startRequest{}, nil
	}
	var p bootstrap.BootstrapParams
	if err := proto.Unmarshal(input, &p); err == nil {
		if p.GetInstanceID() == id && p.GetNamespace() == ns {
			return &startRequest{params: &p}, nil
		}
		if looksLikeBootstrap(&p) {
			return nil, fmt.Errorf("%w: parameters are for id %q in namespace %q, flags say -id %q -namespace %q",
				errBootstrapMismatch, p.GetInstanceID(), p.GetNamespace(), id, ns)
		}
	}
	var a anypb.Any
	if err := proto.Unmarshal(input, &a); err != nil {
		return nil, fmt.Errorf("%w: %w", errBadStartInput, err)
	}
	if len(a.ProtoReflect().GetUnknown()) != 0 {
		return nil, fmt.Errorf("%w: %d bytes with unknown fields", errBadStartInput, len(input))
	}
	return &startRequest{options: &a}, nil
}

// looksLikeBootstrap reports whether p has a field that a google.protobuf.Any cannot fill.
func looksLikeBootstrap(p *bootstrap.BootstrapParams) bool {
	return p.GetLogLevel() != bootstrap.LogLevel_LOG_LEVEL_INFO ||
		p.GetContainerdVersion() != "" ||
		p.GetContainerdTtrpcAddress() != "" ||
		p.GetContainerdGrpcAddress() != "" ||
		p.GetContainerdBinary() != "" ||
		len(p.GetExtensions()) != 0 ||
		p.SocketDir != nil
}

// optionsFromExtensions decodes the runtime options carried by BootstrapParams extensions: the
// first extension holding runc Options or CRI runtimeoptions. Other extensions are ignored;
// none gives default Options.
func optionsFromExtensions(exts []*bootstrap.Extension) (*process.Options, error) {
	for _, e := range exts {
		v := e.GetValue()
		if v.MessageIs(&options.Options{}) || v.MessageIs(&runtimeoptions.Options{}) {
			return decodeOptionsAny(v)
		}
	}
	return &process.Options{}, nil
}

// decodeOptionsAny decodes a runtime-options Any by its type URL; nil gives default Options.
func decodeOptionsAny(a *anypb.Any) (*process.Options, error) {
	if a == nil {
		return &process.Options{}, nil
	}
	o, err := process.DecodeOptions(a.GetTypeUrl(), a.GetValue())
	if err != nil {
		return nil, fmt.Errorf("decode runtime options: %w", err)
	}
	return o, nil
}
