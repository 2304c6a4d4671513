//go:build linux && shim_pprof

// The pprof build (`make build-pprof`, `-tags shim_pprof`; not the released binary): a shim
// server started with -debug (containerd at debug log level) serves net/http/pprof and expvar
// on its debug socket, so `ctr shim --id <container or group id> pprof goroutines|heap|profile|
// block|threadcreate|trace` works. pkg/shim serves the instance of the plugin with ID "pprof" if
// it has a Serve(net.Listener) method (an *http.Server), on the socket -debug-socket names
// (manager/pprof_linux.go passes it). Heap profiling is on again in this build.
package main

import (
	"expvar"
	"net/http"
	"net/http/pprof"
	"runtime"
	"time"

	"github.com/containerd/containerd/v2/plugins"
	"github.com/containerd/plugin"
	"github.com/containerd/plugin/registry"
)

// goDefaultMemProfileRate is the Go runtime's default heap sampling: one sample per 512 KiB.
const goDefaultMemProfileRate = 512 * 1024

// pprofReadHeaderTimeout bounds a client that connects and sends nothing.
const pprofReadHeaderTimeout = time.Minute

func init() {
	runtime.MemProfileRate = goDefaultMemProfileRate // package tune turned it off
	registry.Register(&plugin.Registration{
		ID:   "pprof",
		Type: plugins.HTTPHandler,
		InitFn: func(*plugin.InitContext) (any, error) {
			mux := http.NewServeMux()
			mux.Handle("/debug/vars", expvar.Handler())
			mux.HandleFunc("/debug/pprof/", pprof.Index)
			mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
			mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
			mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
			mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
			return &http.Server{Handler: mux, ReadHeaderTimeout: pprofReadHeaderTimeout}, nil
		},
	})
}
