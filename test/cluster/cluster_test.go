// Package cluster tests hack/local-cluster.sh (a control plane with KWOK's fake
// nodes, where Deployments roll out) and hack/install-k8s-tools.sh (which must
// leave no half-written binary when a build fails).
package cluster

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"meeting.dev/meeting/internal/testenv"
)

var root = testenv.Root()

// assets is the tools directory of hack/test.sh; the local cluster needs these in it.
func assets(t *testing.T) string {
	t.Helper()
	dir := os.Getenv(testenv.AssetsVar)
	if dir == "" {
		t.Fatal(testenv.ErrNoAssets)
	}
	for _, b := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl", "kwok"} {
		if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
			t.Fatalf("%s: %v (run hack/install-k8s-tools.sh)", b, err)
		}
	}
	return dir
}

// script runs a hack/ script with env added and returns its stdout.
func script(t *testing.T, ctx context.Context, env []string, name string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.CommandContext(ctx, filepath.Join(root, "hack", name), args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		t.Logf("%s %s: %v\nstderr:\n%s", name, strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), err
}

// processes lists the processes whose command line names dir.
func processes(t *testing.T, dir string) string {
	t.Helper()
	out, err := exec.Command("pgrep", "-a", "-f", dir).Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() == 1 {
			return "" // none
		}
		t.Fatalf("pgrep: %v", err)
	}
	return strings.TrimSpace(string(out))
}

func TestLocalCluster(t *testing.T) {
	bin := assets(t)
	ctx, cancel := context.WithTimeout(t.Context(), 8*time.Minute)
	defer cancel()
	dir := filepath.Join(t.TempDir(), "cluster")
	env := []string{"MEETING_CLUSTER_DIR=" + dir}
	t.Cleanup(func() {
		// Whatever happened, nothing it started outlives the test.
		if _, err := script(t, context.Background(), env, "local-cluster.sh", "down"); err != nil {
			t.Errorf("down: %v", err)
		}
		if left := processes(t, dir); left != "" {
			t.Errorf("processes left after down:\n%s", left)
		}
	})

	start := time.Now()
	out, err := script(t, ctx, env, "local-cluster.sh", "up")
	if err != nil {
		t.Fatalf("up: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	kubeconfig := lines[len(lines)-1]
	if want := filepath.Join(dir, "admin.kubeconfig"); kubeconfig != want {
		t.Fatalf("up's last line = %q, want the kubeconfig %s", kubeconfig, want)
	}
	t.Logf("up took %s", time.Since(start).Round(time.Millisecond))

	kubectl := func(args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(ctx, filepath.Join(bin, "kubectl"), append([]string{"--kubeconfig", kubeconfig}, args...)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out))
	}

	// Nodes: KWOK's fake ones, Ready.
	ready := kubectl("get", "nodes", "-o", `jsonpath={range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="Ready")].status} {end}`)
	if strings.Count(ready, "=True") < 2 {
		t.Fatalf("nodes not Ready: %s", ready)
	}

	// A Deployment of an image that exists nowhere rolls out: KWOK pulls nothing.
	kubectl("create", "deployment", "web", "--image=registry.invalid/nothing:1", "--replicas=3")
	kubectl("rollout", "status", "deployment/web", "--timeout=180s")
	pods := kubectl("get", "pods", "-l", "app=web", "-o", `jsonpath={range .items[*]}{.spec.nodeName},{.status.podIP},{.status.conditions[?(@.type=="Ready")].status} {end}`)
	if n := strings.Count(pods, ",True"); n != 3 {
		t.Errorf("want 3 Ready pods with a node and an IP, got %q", pods)
	}
	for _, p := range strings.Fields(pods) {
		if f := strings.Split(p, ","); len(f) != 3 || f[0] == "" || f[1] == "" {
			t.Errorf("pod without node or IP: %q", p)
		}
	}
	// A Service gets a ClusterIP.
	kubectl("expose", "deployment", "web", "--port=80")
	if ip := kubectl("get", "service", "web", "-o", "jsonpath={.spec.clusterIP}"); !strings.HasPrefix(ip, "10.96.") {
		t.Errorf("service ClusterIP = %q, want one in 10.96.0.0/16", ip)
	}
	// A rollout of a changed template completes too (old pods are deleted by KWOK).
	kubectl("set", "image", "deployment/web", "nothing=registry.invalid/nothing:2")
	kubectl("rollout", "status", "deployment/web", "--timeout=180s")

	// up again is a no-op that prints the same kubeconfig; status says all run.
	pids := processes(t, dir)
	out, err = script(t, ctx, env, "local-cluster.sh", "up")
	if err != nil {
		t.Fatalf("second up: %v", err)
	}
	if last := strings.TrimSpace(out[strings.LastIndex(strings.TrimSpace(out), "\n")+1:]); last != kubeconfig {
		t.Errorf("second up printed %q last, want %s", last, kubeconfig)
	}
	if again := processes(t, dir); again != pids {
		t.Errorf("second up changed the processes:\nbefore\n%s\nafter\n%s", pids, again)
	}
	status, err := script(t, ctx, env, "local-cluster.sh", "status")
	if err != nil {
		t.Errorf("status: %v\n%s", err, status)
	}
	for _, c := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"} {
		if !strings.Contains(status, c+": running") {
			t.Errorf("status lacks %q:\n%s", c+": running", status)
		}
	}
	if got, err := script(t, ctx, env, "local-cluster.sh", "kubeconfig"); err != nil || strings.TrimSpace(got) != kubeconfig {
		t.Errorf("kubeconfig = %q, %v; want %s", got, err, kubeconfig)
	}

	// down stops every process; status then says so (and fails).
	if _, err := script(t, ctx, env, "local-cluster.sh", "down"); err != nil {
		t.Fatalf("down: %v", err)
	}
	if left := processes(t, dir); left != "" {
		t.Errorf("processes left after down:\n%s", left)
	}
	status, err = script(t, ctx, env, "local-cluster.sh", "status")
	if err == nil || !strings.Contains(status, "kube-apiserver: stopped") {
		t.Errorf("status after down: %v\n%s", err, status)
	}
}
