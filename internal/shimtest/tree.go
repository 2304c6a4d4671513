//go:build linux

package shimtest

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// TreeSnapshot maps every path under dir to its mode and, for a regular file, its content: what
// a test compares before and after a step that must leave the tree as it was.
func TreeSnapshot(t testing.TB, dir string) map[string]string {
	t.Helper()
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = root.Close() }()
	tree := root.FS()
	out := map[string]string{}
	err = fs.WalkDir(tree, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		v := info.Mode().String()
		if d.Type().IsRegular() {
			b, err := fs.ReadFile(tree, p)
			if err != nil {
				return err
			}
			v += " " + string(b)
		}
		out[filepath.Join(dir, p)] = v
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// SameTree fails the test for every path of before that after removed or changed, and every path
// after added; what names the step in the messages.
func SameTree(t testing.TB, what string, before, after map[string]string) {
	t.Helper()
	for p, v := range before {
		if w, ok := after[p]; !ok {
			t.Errorf("%s: %s was removed", what, p)
		} else if w != v {
			t.Errorf("%s: %s changed:\n  before %q\n  after  %q", what, p, v, w)
		}
	}
	for p := range after {
		if _, ok := before[p]; !ok {
			t.Errorf("%s: %s was left behind", what, p)
		}
	}
}
