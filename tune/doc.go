// Package tune is the shim's memory tuning, in one place: what keeps an idle shim small.
//
//   - monitor.go: go-runc's process monitor (runc.Monitor), which waits for children through
//     pkg/shim's reaper, releases their handles, bounds concurrent forks (each blocked fork makes
//     the Go runtime start an OS thread it keeps) and counts live children;
//   - threads.go: ending idle OS threads (EndIdleThreads), never while a runc child whose
//     parent-death signal is tied to its forking thread is alive (the live children count);
//   - trim.go: the Trimmer, which 200 ms after the last Create, Start or Delete (and the last
//     event delivered) ends idle threads and gives free heap pages back;
//   - procs.go: the server's GOMAXPROCS (one P from its first instruction, set by the start
//     action in its environment) and the internal plugin "procs" that puts containerd's value
//     back for the OCI runtime the server runs;
//   - profile.go: heap profiling off from before main runs.
//
// It is at the bottom of the package map: it imports nothing of the shim's. Locks: the live
// children count (children) and the Trimmer's mu are leaves. Goroutines: the Trimmer's timer.
package tune
