//go:build linux

package pod

// fakeShimEnv, set, makes the test binary a stand-in shim (see root_test.go).
const fakeShimEnv = "POD_TEST_SHIM"

func runFakeShim() int { return 2 }
