// Package testbin builds the meeting binary once per test binary, for the
// tests that run it as a separate process (test/e2e, test/browser).
package testbin

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

var (
	buildOnce sync.Once
	binary    string
	buildErr  error
)

// Meeting builds cmd/meeting once per test run (CGO off, as released) and
// returns its path, or returns $MEETING_E2E_BINARY when that names an
// already built one.
func Meeting(tb testing.TB) string {
	tb.Helper()
	if bin := os.Getenv("MEETING_E2E_BINARY"); bin != "" {
		return bin
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "meeting-e2e-")
		if err != nil {
			buildErr = err
			return
		}
		binary = filepath.Join(dir, "meeting")
		cmd := exec.Command("go", "build", "-o", binary, "meeting.dev/meeting/cmd/meeting")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = &buildError{err: err, out: string(out)}
		}
	})
	if buildErr != nil {
		tb.Fatalf("build meeting: %v", buildErr)
	}
	return binary
}

type buildError struct {
	err error
	out string
}

func (e *buildError) Error() string { return e.err.Error() + "\n" + e.out }
