//go:build linux

// Command containerd-shim-custom-v1 is the shim binary of the io.containerd.custom.v1 runtime.
package main

import (
	"context"
	"runtime"

	runc "github.com/containerd/go-runc"

	"github.com/custom-shim/containerd-shim-custom-v1/manager"
	"github.com/custom-shim/containerd-shim-custom-v1/process"

	// The services register themselves as pkg/shim plugins.
	_ "github.com/custom-shim/containerd-shim-custom-v1/sandbox" // registers the Sandbox service (pause-less pods)
	_ "github.com/custom-shim/containerd-shim-custom-v1/task"    // registers the Task service
)

// memProfileRate is the shim's runtime.MemProfileRate. Heap profiling is off: the shim serves no
// profiles (pkg/shim's pprof endpoint needs a pprof plugin, and none is registered), and the Go
// runtime's default sampling kept, for nothing, a 1.4 MiB hash table whose pages are touched one
// by one as new allocation stacks are sampled: in a soak of 1,000 execs, ~0.5 MiB of the shim's
// private memory grew that way and was never given back.
var memProfileRate = 0

func main() {
	runtime.MemProfileRate = memProfileRate
	// pkg/shim reaps every child on SIGCHLD; go-runc must wait through the same reaper.
	runc.Monitor = process.NewMonitor()
	manager.Main(context.Background(), "io.containerd.custom.v1")
}
