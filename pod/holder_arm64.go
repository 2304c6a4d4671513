//go:build linux

package pod

// holderImage returns the holder executable for this machine.
func holderImage() ([]byte, error) { return buildELF(emAArch64, holderAArch64), nil }
