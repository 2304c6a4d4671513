//go:build linux

// Package harness runs private containerd daemons for the integration tests in tests/.
//
// Each [Daemon] lives in its own temp dir (config, root, state, socket, fifo dir, a bin dir that
// PATH puts first), in its own containerd namespace, with a `ctr events` collector attached. It is
// driven through the ctr that ships with that daemon, so the tests exercise what a user would run.
// Two daemons are supported ([Daemons]): the pinned containerd 2.4 (built by `make deps`) and
// Debian's containerd 1.6 (/usr/bin), each paired with its own reference runc shim.
//
// Teardown kills and deletes what is left, stops the daemon, then fails the test if any shim
// process, mount or shim socket outlived it (see [Leaks]); it removes those leftovers either way,
// so a failed run does not poison the next one.
//
// Prerequisites (root, binaries, images) go through [Require]: with CI=true a missing one fails
// the test, elsewhere it skips it with a message saying what to run.
//
// The package has no build tag so `go vet ./...` checks it; only the tests importing it are
// behind the `integration` tag.
package harness
