package main

import (
	"fmt"
	"io"
	"runtime/debug"
)

// Set at link time: go build -ldflags "-X main.version=1.2.3 -X main.revision=abc123"
// (make image does). Without them the version is 0.0.0-dev and the revision
// comes from the VCS information Go records in the binary, when it does.
var (
	version  = "0.0.0-dev"
	revision = ""
)

// imageRepository is where make image's image is published; the operator runs
// its media pods from it, tagged with this binary's version, unless --image says otherwise.
const imageRepository = "ghcr.io/meeting-dev/meeting"

// defaultImage is the image of this very version of the binary.
func defaultImage() string { return imageRepository + ":" + version }

// buildRevision is the -X main.revision value, else the VCS revision recorded
// by go build (with "-dirty" for uncommitted changes), else "unknown".
func buildRevision() string {
	if revision != "" {
		return revision
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	rev, dirty := "", false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "unknown"
	}
	if dirty {
		rev += "-dirty"
	}
	return rev
}

// versionLine is what meeting --version prints: meeting <version> (<revision>).
func versionLine() string { return fmt.Sprintf("meeting %s (%s)", version, buildRevision()) }

// isVersionArg reports whether args ask for the version: --version, -version or version.
func isVersionArg(args []string) bool {
	if len(args) != 1 {
		return false
	}
	switch args[0] {
	case "--version", "-version", "version":
		return true
	}
	return false
}

func printVersion(w io.Writer) error {
	_, err := fmt.Fprintln(w, versionLine())
	return err
}
