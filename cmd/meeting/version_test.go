package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// meeting --version, -version and version print "meeting <version> (<revision>)".
func TestVersionArgs(t *testing.T) {
	for _, arg := range []string{"--version", "-version", "version"} {
		var out, errs bytes.Buffer
		if err := run(context.Background(), []string{arg}, &out, &errs); err != nil {
			t.Fatalf("%s: %v", arg, err)
		}
		want := "meeting " + version + " (" + buildRevision() + ")\n"
		if out.String() != want || errs.Len() != 0 {
			t.Errorf("%s: stdout %q stderr %q, want %q", arg, out.String(), errs.String(), want)
		}
	}
}

// Without -ldflags the version is 0.0.0-dev, and the operator runs that
// version's image by default.
func TestVersionDefault(t *testing.T) {
	if version != "0.0.0-dev" {
		t.Errorf("version = %q, want 0.0.0-dev", version)
	}
	if got := defaultOperatorConfig().Image; got != "ghcr.io/meeting-dev/meeting:0.0.0-dev" {
		t.Errorf("operator image default = %q", got)
	}
}

// The version and revision given with -ldflags -X reach --version and the
// operator's default image.
func TestVersionLdflags(t *testing.T) {
	dir := t.TempDir()
	build := func(name string, ldflags string) string {
		t.Helper()
		bin := filepath.Join(dir, name)
		args := []string{"build", "-o", bin}
		if ldflags != "" {
			args = append(args, "-ldflags", ldflags)
		}
		cmd := exec.Command("go", append(args, ".")...)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build: %v\n%s", err, out)
		}
		return bin
	}
	output := func(bin string, args ...string) string {
		t.Helper()
		out, err := exec.Command(bin, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s %v: %v\n%s", bin, args, err, out)
		}
		return string(out)
	}

	stamped := build("stamped", "-X main.version=1.2.3 -X main.revision=abc1234")
	if got := output(stamped, "--version"); got != "meeting 1.2.3 (abc1234)\n" {
		t.Errorf("stamped --version = %q", got)
	}
	if got := output(stamped, "help", "operator"); !strings.Contains(got, "(default \"ghcr.io/meeting-dev/meeting:1.2.3\")") {
		t.Errorf("stamped operator --image default is not ghcr.io/meeting-dev/meeting:1.2.3:\n%s", got)
	}
}
