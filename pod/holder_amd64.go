//go:build linux

package pod

import _ "embed" // the holder's image

// holderELF is the holder executable for amd64, assembled from holder/amd64.s by go generate.
//
//go:embed holder_amd64.elf
var holderELF []byte

// holderImage returns the holder executable for this machine.
func holderImage() ([]byte, error) { return holderELF, nil }
