// Package shimtest holds what the shim's unit tests share: a reaper loop as pkg/shim runs it, a
// root gate, /proc readers, a shutdown.Service that counts, the server's interceptor on a ttrpc
// pair, a pid-reuse helper. Only _test.go files import it (depguard keeps it out of the shim).
package shimtest
