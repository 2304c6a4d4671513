//go:build linux

package harness

import (
	"context"
	"testing"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
)

// Client connects the containerd Go client to this daemon; it is closed when t ends. The client
// is for calls ctr cannot make precisely (error classes, exec ids, metrics types); it speaks the
// same gRPC API to 1.6 and 2.4.
func (d *Daemon) Client(t testing.TB) *containerd.Client {
	t.Helper()
	c, err := containerd.New(d.Address, containerd.WithDefaultNamespace(d.Namespace))
	if err != nil {
		t.Fatalf("connect to %s: %v", d.Address, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// Context returns a context in the daemon's namespace.
func (d *Daemon) Context(ctx context.Context) context.Context {
	return namespaces.WithNamespace(ctx, d.Namespace)
}

// NewContainer creates container id from the busybox test image, running args with runtime.
func (d *Daemon) NewContainer(ctx context.Context, c *containerd.Client, id, runtime string, opts []oci.SpecOpts, args ...string) (containerd.Container, error) {
	img, err := c.GetImage(ctx, ImageBusybox.Ref)
	if err != nil {
		return nil, err
	}
	specOpts := append([]oci.SpecOpts{oci.WithImageConfig(img), oci.WithProcessArgs(args...)}, opts...)
	return c.NewContainer(ctx, id,
		containerd.WithImage(img),
		containerd.WithNewSnapshot(id+"-snapshot", img),
		containerd.WithRuntime(runtime, nil),
		containerd.WithNewSpec(specOpts...),
	)
}
