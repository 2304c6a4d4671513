//go:build linux

package manager

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"time"

	"github.com/containerd/containerd/api/types"
	runc "github.com/containerd/go-runc"
	"github.com/containerd/log"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/opencontainers/runtime-spec/specs-go/features"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/custom-shim/containerd-shim-custom-v1/version"
)

// featuresTimeout bounds `<runtime> features`: -info runs while containerd introspects runtimes.
const featuresTimeout = 2 * time.Second

// featuresTypeURL is the type URL containerd registers for runtime-spec features.Features
// (core/runtime/typeurl.go). typeurl encodes such non-protobuf types as JSON. We build the Any
// ourselves rather than register the type: a second registration would panic.
var featuresTypeURL = "types.containerd.io/opencontainers/runtime-spec/" +
	strconv.Itoa(specs.VersionMajor) + "/features/Features"

// Info answers -info: the runtime name, this project's version, the runtime options read from
// optionsR (a marshalled Any, or nothing for defaults) echoed back, and the OCI runtime's
// features when `<BinaryName or runc> features` succeeds.
func (m *manager) Info(ctx context.Context, optionsR io.Reader) (*types.RuntimeInfo, error) {
	a, err := readOptionsAny(optionsR)
	if err != nil {
		return nil, err
	}
	opts, err := decodeOptionsAny(a)
	if err != nil {
		return nil, err
	}
	info := &types.RuntimeInfo{
		Name:    m.name,
		Version: &types.RuntimeVersion{Version: version.Version, Revision: version.GetRevision()},
		Options: a,
	}
	bin := opts.BinaryName
	if bin == "" {
		bin = runc.DefaultCommand
	}
	info.Features, err = runtimeFeatures(ctx, bin)
	if err != nil {
		log.G(ctx).WithError(err).Debug("OCI runtime features unavailable")
	}
	return info, nil
}

// readOptionsAny reads a marshalled google.protobuf.Any from r; no input gives nil.
func readOptionsAny(r io.Reader) (*anypb.Any, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxStdin))
	if err != nil {
		return nil, fmt.Errorf("read runtime options: %w", err)
	}
	if len(data) == 0 {
		return nil, nil
	}
	var a anypb.Any
	if err := proto.Unmarshal(data, &a); err != nil {
		return nil, fmt.Errorf("decode runtime options Any: %w", err)
	}
	return &a, nil
}

// runtimeFeatures runs `bin features` and returns its runtime-spec features as an Any.
// It uses os/exec, not go-runc: no reaper runs during -info, so reaper.Default would never
// see the exit.
func runtimeFeatures(ctx context.Context, bin string) (*anypb.Any, error) {
	ctx, cancel := context.WithTimeout(ctx, featuresTimeout)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, "features")
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("run %s features: %w (stderr: %q)", bin, err, stderr.String())
	}
	var f features.Features
	if err := json.Unmarshal(out, &f); err != nil {
		return nil, fmt.Errorf("decode %s features: %w", bin, err)
	}
	value, err := json.Marshal(&f)
	if err != nil {
		return nil, fmt.Errorf("encode %s features: %w", bin, err)
	}
	return &anypb.Any{TypeUrl: featuresTypeURL, Value: value}, nil
}
