//go:build linux

package shimtest

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// errorsOf is a testing.TB that records Errorf.
type errorsOf struct {
	testing.TB
	got []string
}

func (e *errorsOf) Helper() {}

func (e *errorsOf) Errorf(format string, args ...any) {
	e.got = append(e.got, fmt.Sprintf(format, args...))
}

// SameTree names what a step changed, removed and left behind, and nothing when it left the tree
// as it was.
func TestSameTree(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("kept", "a")
	write("changed", "b")
	write("removed", "c")
	before := TreeSnapshot(t, dir)
	if len(before) != 4 || before[filepath.Join(dir, "kept")] != "-rw-r--r-- a" {
		t.Fatalf("snapshot: %q", before)
	}
	same := &errorsOf{TB: t}
	SameTree(same, "nothing done", before, TreeSnapshot(t, dir))
	if len(same.got) != 0 {
		t.Fatalf("an unchanged tree reported: %q", same.got)
	}

	write("changed", "B")
	if err := os.Remove(filepath.Join(dir, "removed")); err != nil {
		t.Fatal(err)
	}
	write("added", "d")
	e := &errorsOf{TB: t}
	SameTree(e, "step", before, TreeSnapshot(t, dir))
	slices.Sort(e.got)
	want := []string{
		"step: " + filepath.Join(dir, "added") + " was left behind",
		"step: " + filepath.Join(dir, "changed") + " changed:\n  before \"-rw-r--r-- b\"\n  after  \"-rw-r--r-- B\"",
		"step: " + filepath.Join(dir, "removed") + " was removed",
	}
	if !slices.Equal(e.got, want) {
		t.Fatalf("reported %q\nwant %q", e.got, want)
	}
}
