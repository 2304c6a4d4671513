//go:build linux

package tune

import (
	"os"
	"runtime"
	"slices"
	"strings"

	"github.com/containerd/containerd/v2/plugins"
	"github.com/containerd/plugin"
	"github.com/containerd/plugin/registry"
)

// gomaxprocsEnv is the Go runtime's variable.
const gomaxprocsEnv = "GOMAXPROCS"

// serverProcs is the shim server's GOMAXPROCS. containerd runs every shim's start with
// GOMAXPROCS=2 in its environment (core/runtime/v2/command.go appends it after its own, so no
// operator's value reaches a shim); containerd's runc shim runs its server with 4. Every P holds,
// for the process's whole life, a cache of partly used heap spans (one per size class it
// allocated from) and an OS thread: a server that runs with one P from its first instruction
// holds ~300 KiB less private memory at idle than with 2 (~150 KiB if it drops to one only once
// its package inits have run; docs/benchmarks.md, "Shim memory"). The server's Go code is short
// request handling between system calls and runc runs that block, and a goroutine blocked in a
// system call hands the P to another thread, so one P costs no measurable latency or throughput
// in the benchmark.
const serverProcs = "1"

// runtimeProcsEnv carries, from start to the server, the GOMAXPROCS that start was given (unset
// if none), which the server puts back into its environment for what it runs. The OCI runtime
// inherits the server's environment, and `runc exec` at GOMAXPROCS=1 measured slower.
const runtimeProcsEnv = "CONTAINERD_SHIM_CUSTOM_RUNTIME_GOMAXPROCS"

// ServerProcsEnv returns env (the start action's, for the server it forks) with
// GOMAXPROCS=serverProcs for the server, and env's own GOMAXPROCS (empty if unset) in
// runtimeProcsEnv for the server's children.
func ServerProcsEnv(env []string) []string {
	given := ""
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, gomaxprocsEnv+"="); ok {
			given = v
		}
	}
	env = slices.DeleteFunc(slices.Clone(env), func(kv string) bool {
		return strings.HasPrefix(kv, gomaxprocsEnv+"=") || strings.HasPrefix(kv, runtimeProcsEnv+"=")
	})
	return append(env, runtimeProcsEnv+"="+given, gomaxprocsEnv+"="+serverProcs)
}

// RestoreRuntimeProcs gives the server's environment back the GOMAXPROCS that start was given,
// for the processes the server runs (the Go runtime read GOMAXPROCS at start-up: this process
// keeps serverProcs).
func RestoreRuntimeProcs() {
	v, ok := os.LookupEnv(runtimeProcsEnv)
	if !ok {
		return // not started by our start (a test, a server run by hand): leave it
	}
	_ = os.Unsetenv(runtimeProcsEnv)
	if v == "" {
		_ = os.Unsetenv(gomaxprocsEnv)
		return
	}
	_ = os.Setenv(gomaxprocsEnv, v)
}

// An internal plugin restores the environment: pkg/shim initialises plugins only in the server,
// after its setRuntime has read GOMAXPROCS (it sets 2 when the variable is unset). Its instance
// is the server's P count.
func init() {
	registry.Register(&plugin.Registration{
		Type: plugins.InternalPlugin,
		ID:   "procs",
		InitFn: func(*plugin.InitContext) (any, error) {
			RestoreRuntimeProcs()
			return runtime.GOMAXPROCS(0), nil
		},
	})
}
