//go:build linux

package io

import (
	"os"
	"os/signal"
	"testing"

	"github.com/containerd/containerd/v2/pkg/sys/reaper"
	"golang.org/x/sys/unix"
)

// TestMain reaps children the way pkg/shim does in the shim (SIGCHLD → reaper.Reap), so that
// loggers are waited through reaper.Default as in production.
func TestMain(m *testing.M) {
	ch := make(chan os.Signal, 32)
	signal.Notify(ch, unix.SIGCHLD)
	go func() {
		for range ch {
			_ = reaper.Reap()
		}
	}()
	os.Exit(m.Run())
}
