//go:build linux

package pod

import _ "embed" // the holder's image

// holderELF is the holder executable for arm64, assembled from holder/arm64.s by go generate.
//
//go:embed holder_arm64.elf
var holderELF []byte

// holderImage returns the holder executable for this machine.
func holderImage() ([]byte, error) { return holderELF, nil }
