// Package bench is `make bench`: it starts a private containerd 2.4 (tests/harness)
// with both runtimes registered, runs the same workloads on this shim (io.containerd.custom.v1)
// and on the reference (io.containerd.runc.v2, containerd-shim-runc-v2 of the pinned release),
// interleaved in one run, and prints a table of medians, p95s, ratios, targets and floors.
//
// The benchmark lives in bench_test.go behind the `bench` build tag (it needs root and the
// pinned binaries of `make deps`); it asserts nothing about speed: a run fails only when a
// workload could not run or lost an exit. See docs/benchmarks.md for the method and a run.
//
// Sizes come from the environment (BENCH_QUICK=1 for a smoke run; BENCH_* for each figure,
// listed in docs/benchmarks.md).
package bench
