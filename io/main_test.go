//go:build linux

package io

import (
	"os"
	"testing"

	"github.com/custom-shim/containerd-shim-custom-v1/internal/shimtest"
)

// TestMain reaps children the way pkg/shim does in the shim (SIGCHLD → reaper.Reap), so that
// loggers are waited through reaper.Default as in production.
func TestMain(m *testing.M) {
	shimtest.ReapLoop()
	os.Exit(m.Run())
}
