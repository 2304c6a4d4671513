//go:build linux

package tune

import "runtime"

// Heap profiling is off in the shim, from before main runs (this package's init precedes the
// main package's): the shim serves no profiles (pkg/shim's pprof endpoint needs a pprof plugin,
// and none is registered), and the Go runtime's default sampling kept, for nothing, a 1.4 MiB
// hash table whose pages are touched one by one as new allocation stacks are sampled: in a soak
// of 1,000 execs, ~0.5 MiB of the shim's private memory grew that way and was never given back.
// The diagnostic builds (cmd: -tags shim_pprof, memstats) turn it on again in their init.
func init() {
	runtime.MemProfileRate = 0
}
