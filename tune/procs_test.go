//go:build linux

package tune

import (
	"os"
	"strings"
	"testing"
)

func TestRestoreRuntimeProcs(t *testing.T) {
	for _, tc := range []struct {
		name, given string
		set         bool // runtimeProcsEnv in the environment
		want        string
		wantSet     bool
	}{
		{name: "containerd's 2", given: "2", set: true, want: "2", wantSet: true},
		{name: "none given", given: "", set: true, wantSet: false},
		{name: "not from our start", set: false, want: serverProcs, wantSet: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(gomaxprocsEnv, serverProcs)
			t.Setenv(runtimeProcsEnv, tc.given)
			if !tc.set {
				_ = os.Unsetenv(runtimeProcsEnv)
			}
			RestoreRuntimeProcs()
			if _, ok := os.LookupEnv(runtimeProcsEnv); ok {
				t.Errorf("%s still set", runtimeProcsEnv)
			}
			got, ok := os.LookupEnv(gomaxprocsEnv)
			if ok != tc.wantSet || got != tc.want {
				t.Errorf("GOMAXPROCS = %q (set %v), want %q (set %v)", got, ok, tc.want, tc.wantSet)
			}
		})
	}
}

// The server's environment: GOMAXPROCS=serverProcs, and the start's own (containerd runs start
// with GOMAXPROCS=2) kept for the OCI runtime in runtimeProcsEnv.
func TestServerProcsEnv(t *testing.T) {
	env := ServerProcsEnv([]string{"A=1", "GOMAXPROCS=2"})
	if got := strings.Join(env, " "); got != "A=1 "+runtimeProcsEnv+"=2 GOMAXPROCS="+serverProcs {
		t.Fatalf("env = %q", got)
	}
	env = ServerProcsEnv([]string{"A=1"})
	if got := strings.Join(env, " "); got != "A=1 "+runtimeProcsEnv+"= GOMAXPROCS="+serverProcs {
		t.Fatalf("env = %q", got)
	}
}
