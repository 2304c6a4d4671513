//go:build linux

package process

import (
	"path/filepath"

	runc "github.com/containerd/go-runc"
	"golang.org/x/sys/unix"
)

// DefaultRuncRoot is the parent of the per-namespace runc state roots, as for containerd's runc shim.
const DefaultRuncRoot = "/run/containerd/runc"

// InitPidFile is the pid file runc writes for a container's init process, inside the bundle.
const InitPidFile = "init.pid"

// NewRuntime returns the go-runc client for containers of namespace ns in bundle, configured by o.
// It logs runc's errors as JSON to bundle/log.json, where runtime errors are scraped from.
func NewRuntime(o *Options, bundle, ns string) *runc.Runc {
	root := o.Root
	if root == "" {
		root = DefaultRuncRoot
	}
	bin := o.BinaryName
	if bin == "" {
		bin = runc.DefaultCommand
	}
	return &runc.Runc{
		Command:       bin,
		Log:           filepath.Join(bundle, "log.json"),
		LogFormat:     runc.JSON,
		PdeathSignal:  unix.SIGKILL,
		Root:          filepath.Join(root, ns),
		SystemdCgroup: o.SystemdCgroup,
	}
}
