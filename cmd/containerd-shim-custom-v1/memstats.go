//go:build linux && memstats

// A diagnostic build (`go build -tags memstats`, never the shipped binary): on SIGUSR2 the shim
// writes the Go runtime's memory classes and its RSS (/tmp/shim-mem-PID-N.txt), its smaps
// (.smaps), a heap profile (.heap) and its goroutines (.goroutines), to tell a leak from the
// runtime's high-water marks (see docs/reliability.md, "Soak memory").
package main

import (
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
)

func init() {
	// /tmp/shim-memprofilerate (a number) keeps heap profiling on, for the .heap files.
	if b, err := os.ReadFile("/tmp/shim-memprofilerate"); err == nil {
		if r, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			runtime.MemProfileRate = r
		}
	}
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGUSR2)
	go func() {
		for n := 0; ; n++ {
			<-ch
			dumpMem(n)
		}
	}()
}

func dumpMem(n int) {
	base := fmt.Sprintf("/tmp/shim-mem-%d-%d", os.Getpid(), n)
	var samples []metrics.Sample
	for _, d := range metrics.All() {
		if d.Kind == metrics.KindUint64 && (strings.HasPrefix(d.Name, "/memory/") ||
			strings.HasPrefix(d.Name, "/sched/goroutines") || strings.HasPrefix(d.Name, "/gc/heap/objects") ||
			strings.HasPrefix(d.Name, "/gc/stack/") || strings.HasPrefix(d.Name, "/gc/cycles/") ||
			strings.HasPrefix(d.Name, "/gc/heap/goal")) {
			samples = append(samples, metrics.Sample{Name: d.Name})
		}
	}
	metrics.Read(samples)
	var b strings.Builder
	for _, s := range samples {
		fmt.Fprintf(&b, "%-60s %d\n", s.Name, s.Value.Uint64())
	}
	status, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(l, "Rss") || strings.HasPrefix(l, "Threads") {
			b.WriteString(l + "\n")
		}
	}
	_ = os.WriteFile(base+".txt", []byte(b.String()), 0o600)
	if smaps, err := os.ReadFile("/proc/self/smaps"); err == nil {
		_ = os.WriteFile(base+".smaps", smaps, 0o600) //nolint:gosec // base is made of two numbers above: no path from outside
	}
	if f, err := os.Create(base + ".heap"); err == nil {
		runtime.GC()
		_ = pprof.WriteHeapProfile(f)
		_ = f.Close()
	}
	if f, err := os.Create(base + ".goroutines"); err == nil {
		_ = pprof.Lookup("goroutine").WriteTo(f, 1)
		_ = f.Close()
	}
}
