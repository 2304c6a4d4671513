//go:build linux

package process

import (
	"fmt"
	"regexp"

	"github.com/containerd/errdefs"
)

var idPattern = regexp.MustCompile(`^[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*$`)

// ValidID checks an id that ends up in file names (a container's, an exec's, a sandbox's):
// containerd's identifier rules. kind names the id in the error.
func ValidID(kind, id string) error {
	if len(id) == 0 || len(id) > 76 || !idPattern.MatchString(id) {
		return fmt.Errorf("invalid %s id %q: %w", kind, id, errdefs.ErrInvalidArgument)
	}
	return nil
}
