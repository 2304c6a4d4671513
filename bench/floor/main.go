//go:build linux

// Command floor is the memory floor of `make bench`: a Go program that links what a
// shim built on containerd's pkg/shim links (pkg/shim, the task v3 and events API packages,
// cgroups v3 for v1 and v2, go-runc), so that every package init such a shim pays runs here too,
// and that serves one ttrpc listener, then does nothing. Its private memory at idle is what any
// such shim costs before it does any work of its own; the benchmark's memory phase prints it in
// the floor column. Build it as the shim is built: CGO_ENABLED=0.
//
//	floor [-gc N] SOCKET
//
// The program alone never runs a garbage collection: its heap stays under the Go runtime's first
// goal (4 MiB). A shim does: pkg/shim's server sets GOGC=40 and calls debug.FreeOSMemory (a
// forced collection) every 30 s, and collections make the runtime build metadata that it keeps
// for good (the span sets of every size class in use, for both sweep generations). -gc N runs N
// forced collections at GOGC=40 before serving, so that the floor can also be read in the state
// a pkg/shim server reaches in its first minutes.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"runtime/debug"

	"github.com/containerd/ttrpc"

	// The shim's import set, for their package inits.
	_ "github.com/containerd/cgroups/v3/cgroup1"
	_ "github.com/containerd/cgroups/v3/cgroup2"
	_ "github.com/containerd/containerd/api/events"
	_ "github.com/containerd/containerd/api/runtime/task/v3"
	_ "github.com/containerd/containerd/v2/pkg/shim"
	_ "github.com/containerd/go-runc"
)

// shimGCPercent is the GOGC that pkg/shim's server sets (setRuntime in pkg/shim/shim.go).
const shimGCPercent = 40

func main() {
	gc := flag.Int("gc", 0, "run this many forced collections at GOGC=40 before serving, as pkg/shim's server does every 30 s")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: floor [-gc N] SOCKET")
		os.Exit(2)
	}
	if err := serve(flag.Arg(0), *gc); err != nil {
		fmt.Fprintln(os.Stderr, "floor:", err)
		os.Exit(1)
	}
}

func serve(socket string, gc int) error {
	l, err := net.Listen("unix", socket)
	if err != nil {
		return err
	}
	s, err := ttrpc.NewServer()
	if err != nil {
		return err
	}
	if gc > 0 {
		debug.SetGCPercent(shimGCPercent)
	}
	for range gc {
		debug.FreeOSMemory()
	}
	return s.Serve(context.Background(), l)
}
