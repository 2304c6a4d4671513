//go:build linux

// Command containerd-shim-custom-v1 is the shim binary of the io.containerd.custom.v1 runtime.
package main

import (
	"context"

	runc "github.com/containerd/go-runc"

	"github.com/custom-shim/containerd-shim-custom-v1/manager"
	"github.com/custom-shim/containerd-shim-custom-v1/process"
	// The task service registers itself as a pkg/shim plugin.
	_ "github.com/custom-shim/containerd-shim-custom-v1/task"
)

func main() {
	// pkg/shim reaps every child on SIGCHLD; go-runc must wait through the same reaper.
	runc.Monitor = process.NewMonitor()
	manager.Main(context.Background(), "io.containerd.custom.v1")
}
