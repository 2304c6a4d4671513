//go:build linux

// Command containerd-shim-custom-v1 is the shim binary of the io.containerd.custom.v1 runtime.
package main

import (
	"context"

	runc "github.com/containerd/go-runc"

	"github.com/custom-shim/containerd-shim-custom-v1/manager"
	"github.com/custom-shim/containerd-shim-custom-v1/tune"

	// The services register themselves as pkg/shim plugins.
	_ "github.com/custom-shim/containerd-shim-custom-v1/sandbox" // registers the Sandbox service (pause-less pods)
	_ "github.com/custom-shim/containerd-shim-custom-v1/task"    // registers the Task service
)

func main() {
	// pkg/shim reaps every child on SIGCHLD; go-runc must wait through the same reaper (with the
	// shim's bound on concurrent forks: package tune, which also turns heap profiling off).
	runc.Monitor = tune.NewMonitor()
	manager.Main(context.Background(), "io.containerd.custom.v1")
}
