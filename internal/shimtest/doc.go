// Package shimtest holds what the shim's tests share: a reaper loop as pkg/shim runs it
// (ReapLoop), the root gate and the CI rule for prerequisites (RequireRoot, Prerequisite), the
// count of open fds, a shutdown.Service that counts (Shutdown), a process started on a chosen
// pid (StartWithPid), a directory tree's snapshot and its comparison (TreeSnapshot, SameTree). Only
// _test.go files import it (depguard keeps it out of the shim).
package shimtest
