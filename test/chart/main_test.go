// Package chart tests the Helm chart charts/meeting with real tools: helm
// lint and template, kubectl apply --dry-run=server against a real API server
// (envtest), the values schema, the RBAC rules against config/rbac, labels, a
// helm install/upgrade/uninstall on envtest, and (install_test.go) the whole
// life of a release on the local cluster of hack/local-cluster.sh.
package chart_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"meeting.dev/meeting/internal/testenv"
)

// env is the control plane the dry-run tests apply to, started once.
var env *testenv.Env

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "meeting-chart-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	env, err = testenv.Start(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chart tests need a control plane, kubectl and helm:", err)
		return 1
	}
	defer func() {
		if err := env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}()
	return m.Run()
}

// chartDir is the chart under test.
func chartDir() string { return filepath.Join(testenv.Root(), "charts", "meeting") }

// tool returns the path of helm or kubectl from the assets directory.
func tool(t *testing.T, name string) string {
	t.Helper()
	p, err := env.Tool(name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// runTool runs a tool with a timeout and returns its stdout; stderr goes into
// the error.
func runTool(t *testing.T, stdin []byte, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, tool(t, name), args...)
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+t.TempDir(), "HELM_CONFIG_HOME="+t.TempDir(), "HELM_DATA_HOME="+t.TempDir())
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, errb.String())
	}
	return out.String(), nil
}

// mustRun is runTool failing the test on an error.
func mustRun(t *testing.T, stdin []byte, name string, args ...string) string {
	t.Helper()
	out, err := runTool(t, stdin, name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// render runs helm template for release rel in namespace ns with extra args.
func render(t *testing.T, rel, ns string, args ...string) string {
	t.Helper()
	return mustRun(t, nil, "helm", append([]string{"template", rel, chartDir(), "--namespace", ns}, args...)...)
}

// objects splits a rendered manifest into objects.
func objects(t *testing.T, manifest string) []*unstructured.Unstructured {
	t.Helper()
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(manifest), 4096)
	var objs []*unstructured.Unstructured
	for {
		var m map[string]any
		err := dec.Decode(&m)
		if errors.Is(err, io.EOF) {
			return objs
		}
		if err != nil {
			t.Fatalf("decode rendered manifest: %v", err)
		}
		if len(m) == 0 {
			continue
		}
		objs = append(objs, &unstructured.Unstructured{Object: m})
	}
}

// find returns the rendered object of a kind whose name ends with suffix.
func find(t *testing.T, objs []*unstructured.Unstructured, kind, suffix string) *unstructured.Unstructured {
	t.Helper()
	var found *unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == kind && strings.HasSuffix(o.GetName(), suffix) {
			if found != nil {
				t.Fatalf("two %s objects named *%s: %s and %s", kind, suffix, found.GetName(), o.GetName())
			}
			found = o
		}
	}
	if found == nil {
		t.Fatalf("no %s named *%s rendered", kind, suffix)
	}
	return found
}

// valuesFile returns the path of a values file under the chart's ci/.
func valuesFile(name string) string { return filepath.Join(chartDir(), "ci", name) }
