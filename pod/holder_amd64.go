//go:build linux

package pod

// holderImage returns the holder executable for this machine.
func holderImage() ([]byte, error) { return buildELF(emX86_64, holderX86_64), nil }
