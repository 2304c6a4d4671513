//go:build linux && !shim_pprof

package manager

// debugSocketArgs is nil in the default build: it registers no pprof plugin, so pkg/shim serves
// nothing on a debug socket (see pprof_linux.go for the shim_pprof build).
func debugSocketArgs(*startConfig, string) []string { return nil }
