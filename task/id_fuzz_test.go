//go:build linux

package task

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
)

// FuzzValidID checks the id rule that keeps request ids out of the file system (security,
// docs/reliability.md): an accepted id is one plain file name (no separator, no "..", no NUL, no
// leading dot or dash, at most 76 bytes), so joining it under a bundle or state dir stays
// directly inside that dir; a rejected one is InvalidArgument naming what was checked.
// Seed corpus: testdata/fuzz/FuzzValidID plus the f.Add calls.
func FuzzValidID(f *testing.F) {
	for _, s := range []string{
		"", "a", "c1", "my-container_1.2", "..", ".", "a/b", "/abs", "a\x00b", "../../etc/passwd",
		"a..b", "a.-b", "-a", "a-", ".hidden", "é", strings.Repeat("a", 76), strings.Repeat("a", 77),
		"a\nb", "a b", "a\\b", "%2e%2e", "~root",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		err := validID("exec", id)
		if err != nil {
			if !errdefs.IsInvalidArgument(err) {
				t.Errorf("validID(%q): %v is not InvalidArgument", id, err)
			}
			if !strings.Contains(err.Error(), "exec") {
				t.Errorf("validID(%q): %v does not name the kind of id", id, err)
			}
			return
		}
		if len(id) == 0 || len(id) > 76 {
			t.Errorf("validID accepted %q of length %d", id, len(id))
		}
		if strings.ContainsAny(id, "/\\\x00\n ") || strings.Contains(id, "..") || id[0] == '.' || id[0] == '-' {
			t.Errorf("validID accepted %q", id)
		}
		const base = "/run/bundle"
		joined := filepath.Join(base, id)
		if filepath.Dir(joined) != base || filepath.Base(joined) != id {
			t.Errorf("validID accepted %q, which joins to %s outside %s", id, joined, base)
		}
	})
}
