//go:build linux

package shimtest

import (
	"os"
	"strconv"
	"testing"
)

// RequireRoot gates a test that needs root: ROOT_TESTS=1 (make root-test) and euid 0. Without
// ROOT_TESTS=1 the test skips; with it but not root, it fails.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Getenv("ROOT_TESTS") != "1" {
		t.Skip("needs ROOT_TESTS=1 (make root-test)")
	}
	if os.Geteuid() != 0 {
		t.Fatal("ROOT_TESTS=1 but not root")
	}
}

// Prerequisite reports a missing prerequisite of a test that is otherwise able to run: with
// CI=true the test fails (CI never skips a check), else it skips.
func Prerequisite(t testing.TB, format string, args ...any) {
	t.Helper()
	if ci, _ := strconv.ParseBool(os.Getenv("CI")); ci {
		t.Fatalf("missing prerequisite (CI=true): "+format, args...)
	}
	t.Skipf("missing prerequisite: "+format, args...)
}

// OpenFDs is the number of the test process's open file descriptors.
func OpenFDs(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}
