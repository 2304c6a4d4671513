// Command version prints the version of a build of this tree (version.FromGit): the Makefile
// stamps it into the shim and names the release tarballs with it.
//
//	go run ./hack/version              # asks git about the working tree
//	go run ./hack/version -committed   # the commit HEAD, whatever the working tree holds
//	go run ./hack/version -revision    # the full commit instead
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strings"

	"github.com/custom-shim/containerd-shim-custom-v1/version"
)

func main() {
	revision := flag.Bool("revision", false, "print the full commit instead of the version")
	committed := flag.Bool("committed", false, "the version of HEAD as committed (never dirty)")
	flag.Parse()
	commit := git("rev-parse", "HEAD")
	if *revision {
		fmt.Println(commit)
		return
	}
	// Only release tags count (v1.2.3...), the 12-digit revision as in version.FromGit.
	describe := git("describe", "--tags", "--match", "v[0-9]*.[0-9]*.[0-9]*", "--abbrev=12", "HEAD")
	// Tracked files only: an untracked scratch file does not make a build dirty.
	dirty := git("status", "--porcelain", "--untracked-files=no") != ""
	if commit == "" || *committed {
		dirty = false // not a git tree (nothing to compare with), or asked about the commit alone
	}
	fmt.Println(version.FromGit(describe, commit, dirty))
}

// git runs git in the working directory and returns its trimmed output, "" if it fails (no
// git, not a repository, no tag to describe from).
func git(args ...string) string {
	cmd := exec.Command("git", args...)
	cmd.Stderr = nil
	out, err := cmd.Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

func init() {
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: go run ./hack/version [-committed | -revision]")
		flag.PrintDefaults()
	}
}
