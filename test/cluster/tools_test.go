package cluster

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// toolsBin is the bin directory install-k8s-tools.sh uses under cache.
func toolsBin(t *testing.T, cache string) string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(cache, "meeting", "k8s-tools", "*", "bin"))
	if err != nil || len(m) != 1 {
		t.Fatalf("tools bin under %s: %v %v", cache, m, err)
	}
	return m[0]
}

// binEntries lists what a bin directory holds, dot files included.
func binEntries(t *testing.T, bin string) []string {
	t.Helper()
	es, err := os.ReadDir(bin)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

// A build that fails half way, after writing part of its output, leaves
// nothing in bin/: every build path (go build -o for the Kubernetes binaries,
// go install for helm, controller-gen and kwok) is made to fail by a go that
// writes a partial file where it was told to, then exits 1.
func TestToolBuildFailsCleanly(t *testing.T) {
	fake := t.TempDir()
	goScript := `#!/usr/bin/env bash
# a go whose builds write half a binary, then fail
case $1 in
build)
  while [ $# -gt 0 ]; do [ "$1" = -o ] && echo half >"$2"; shift; done ;;
install)
  pkg=${!#}; pkg=${pkg%@*}; echo half >"$GOBIN/${pkg##*/}" ;;
esac
exit 1
`
	if err := os.WriteFile(filepath.Join(fake, "go"), []byte(goScript), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tool := range []string{"kube-apiserver", "kube-scheduler", "helm", "controller-gen", "kwok"} {
		t.Run(tool, func(t *testing.T) {
			cache := t.TempDir()
			env := []string{"XDG_CACHE_HOME=" + cache, "PATH=" + fake + ":" + os.Getenv("PATH")}
			if strings.HasPrefix(tool, "kube-") {
				// The module as set up by an earlier run (.ready): straight to go build.
				// An unknown tool name makes the script create its directories and stop.
				if _, err := script(t, t.Context(), env, "install-k8s-tools.sh", "no-such-tool"); err == nil {
					t.Fatal("install-k8s-tools.sh no-such-tool succeeded")
				}
				src := filepath.Join(filepath.Dir(toolsBin(t, cache)), "src", "kubernetes")
				if err := os.MkdirAll(src, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(src, ".ready"), nil, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			if _, err := script(t, ctx, env, "install-k8s-tools.sh", tool); err == nil {
				t.Fatal("install-k8s-tools.sh succeeded with a failing go")
			}
			if left := binEntries(t, toolsBin(t, cache)); len(left) != 0 {
				t.Errorf("bin/ holds %v after a failed build, want nothing", left)
			}
		})
	}
}

// A version that does not exist fails the script and leaves no binary.
func TestToolBogusVersion(t *testing.T) {
	cache := t.TempDir()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	env := []string{"XDG_CACHE_HOME=" + cache, "KWOK_VERSION=v0.0.0-no-such-version"}
	if _, err := script(t, ctx, env, "install-k8s-tools.sh", "kwok"); err == nil {
		t.Fatal("install-k8s-tools.sh kwok succeeded with a version that does not exist")
	}
	bin := toolsBin(t, cache)
	if left := binEntries(t, bin); len(left) != 0 {
		t.Errorf("bin/ holds %v after a failed build, want nothing", left)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(bin), "kwok-stages")); err == nil {
		t.Error("kwok-stages exists after a failed build")
	}
}
