package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rtcv1alpha1 "meeting.dev/meeting/api/v1alpha1"
	"meeting.dev/meeting/controllers"
	"meeting.dev/meeting/internal/store/storetest"
	apisync "meeting.dev/meeting/internal/sync"
	"meeting.dev/meeting/internal/testenv"
	mclient "meeting.dev/meeting/media/client"
)

// cluster is a control plane (kube-apiserver and etcd, envtest) the test
// starts for the processes it runs.
type cluster struct {
	env     *testenv.Env
	client  client.Client
	kubectl string
}

func startCluster(t testing.TB) *cluster {
	t.Helper()
	if os.Getenv(testenv.AssetsVar) == "" && os.Getenv("CI") == "" {
		t.Skip(testenv.ErrNoAssets) // under CI it must be there: testenv.Start fails below
	}
	env, err := testenv.Start(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Error(err)
		}
	})
	scheme, err := controllers.NewScheme()
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(env.Config, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	kubectl, err := env.Tool("kubectl")
	if err != nil {
		t.Fatal(err)
	}
	return &cluster{env: env, client: c, kubectl: kubectl}
}

// run runs kubectl against the cluster and returns its standard output.
func (c *cluster) run(t testing.TB, stdin string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(c.kubectl, append([]string{"--kubeconfig", c.env.Kubeconfig}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, errOut.String())
	}
	return out.String(), nil
}

func (c *cluster) kubectlOK(t testing.TB, stdin string, args ...string) string {
	t.Helper()
	out, err := c.run(t, stdin, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// waitFor retries f until it returns nil; the bound only guards hangs.
func waitFor(t testing.TB, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var err error
	for time.Now().Before(deadline) {
		if err = f(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: %v", what, err)
}

// markAvailable sets a Deployment's status as the deployment controller
// does once its pod is ready (envtest runs no controller-manager or kubelet).
func (c *cluster) markAvailable(t testing.TB, ns, name string) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var d appsv1.Deployment
		if err := c.client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &d); err != nil {
			return err
		}
		d.Status = appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: 1, UpdatedReplicas: 1, ReadyReplicas: 1, AvailableReplicas: 1,
			Conditions: []appsv1.DeploymentCondition{{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue, Reason: "MinimumReplicasAvailable",
				LastUpdateTime: metav1.Now(), LastTransitionTime: metav1.Now()}}}
		return c.client.Status().Update(context.Background(), &d)
	})
	if err != nil {
		t.Fatalf("mark %s available: %v", name, err)
	}
}

func randomName(prefix string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// The end-to-end flow with the built binary as processes: a real
// API server, `meeting operator`, `meeting api` on MariaDB. kubectl apply →
// REST list shows it; REST create → kubectl get mtg shows it; a delete on
// either side removes both; the join of a running meeting returns a token
// that the room's SFU (`meeting sfu`, run with the Secret's key and the args
// the operator rendered) accepts through the API's proxy; both stop
// cleanly on SIGTERM.
//
// The operator runs with NodePort Services and --public-address=127.0.0.1,
// so status.signalURL names ws://127.0.0.1:<nodePort>/ws and the SFU
// listens there (no cluster DNS, no kube-proxy): the proxy dials what the
// operator reports, as in production.
func TestSyncWithCluster(t *testing.T) {
	c := startCluster(t)
	ctx := context.Background()
	ns := randomName("e2e-")
	c.kubectlOK(t, "", "create", "namespace", ns)
	kc := "--kubeconfig=" + c.env.Kubeconfig

	op := start(t, nil, "operator", kc, "--namespace="+ns, "--image=meeting:e2e", "--service-type=NodePort",
		"--public-address=127.0.0.1", "--lead-time=1m", "--end-grace=1m", "--metrics-addr=0", "--health-addr=0")
	api, base := startSyncingAPI(t, c, storetest.NewDatabaseURL(t), ns, "--resync-period=10s")
	root, err := mclient.Login(ctx, base, "root", "first-admin-pw")
	if err != nil {
		t.Fatal(err)
	}
	rest := raw(t, root)
	listed := func() map[string]string {
		var l list
		rest.call("GET", "/auth/meeting/list?page=1&size=100", nil, 200, &l)
		out := map[string]string{}
		for _, m := range l.List {
			out[m.Identity] = m.Name
		}
		return out
	}

	// kubectl apply → REST.
	begin := time.Now().Add(2 * time.Hour).UTC().Truncate(time.Second)
	c.kubectlOK(t, fmt.Sprintf(`apiVersion: rtc.meeting.dev/v1alpha1
kind: Meeting
metadata: {name: kube-one, namespace: %s}
spec:
  identity: kube-one
  title: made with kubectl
  beginAt: %s
  endAt: %s
  creator: root
`, ns, begin.Format(time.RFC3339), begin.Add(time.Hour).Format(time.RFC3339)), "apply", "-f", "-")
	waitFor(t, "kubectl's Meeting in REST", func() error {
		if name := listed()["kube-one"]; name != "made with kubectl" {
			return fmt.Errorf("list has %q", name)
		}
		return nil
	})

	// REST → kubectl.
	made := createMeeting(t, root, "made with REST", begin, begin.Add(time.Hour))
	waitFor(t, "REST's meeting in kubectl get mtg", func() error {
		out, err := c.run(t, "", "-n", ns, "get", "mtg", apisync.ResourceName(made.Identity), "-o", "jsonpath={.spec.identity} {.spec.title}")
		if err != nil {
			return err
		}
		if out != made.Identity+" made with REST" {
			return fmt.Errorf("kubectl get: %q", out)
		}
		return nil
	})

	// Deletes, both ways.
	c.kubectlOK(t, "", "-n", ns, "delete", "mtg", "kube-one", "--wait=false")
	rest.call("DELETE", "/auth/meeting/delete?identity="+made.Identity, nil, 200, nil)
	waitFor(t, "both deleted on both sides", func() error {
		if l := listed(); len(l) != 0 {
			return fmt.Errorf("REST still lists %v", l)
		}
		out, err := c.run(t, "", "-n", ns, "get", "mtg", "-o", "name")
		if err != nil {
			return err
		}
		if strings.TrimSpace(out) != "" {
			return fmt.Errorf("kubectl still has %q", out)
		}
		return nil
	})

	// A meeting that runs now: its media comes up at once (lead time 1m).
	now := time.Now()
	live := createMeeting(t, root, "live", now.Add(30*time.Second), now.Add(time.Hour))
	name := apisync.ResourceName(live.Identity)
	var m rtcv1alpha1.Meeting
	waitFor(t, "the operator's SFU and TURN Deployments", func() error {
		for _, d := range []string{controllers.SFUName(name), controllers.TURNName(name)} {
			if err := c.client.Get(ctx, client.ObjectKey{Namespace: ns, Name: d}, &appsv1.Deployment{}); err != nil {
				return err
			}
		}
		return nil
	})
	waitFor(t, "503 with Retry-After while Starting", func() error {
		req, _ := http.NewRequest("POST", base+"/auth/meeting/join", strings.NewReader(`{"identity":"`+live.Identity+`"}`))
		req.Header.Set("Authorization", root.Token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
			return fmt.Errorf("join: %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
		}
		return nil
	})
	c.markAvailable(t, ns, controllers.SFUName(name))
	c.markAvailable(t, ns, controllers.TURNName(name))
	waitFor(t, "Running with a signalling endpoint", func() error {
		if err := c.client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &m); err != nil {
			return err
		}
		if m.Status.Phase != rtcv1alpha1.PhaseRunning || m.Status.SignalURL == "" {
			return fmt.Errorf("phase %q signalURL %q", m.Status.Phase, m.Status.SignalURL)
		}
		return nil
	})
	if !strings.HasPrefix(m.Status.SignalURL, "ws://127.0.0.1:") {
		t.Fatalf("signalURL %q, want ws://127.0.0.1:<nodePort>/ws", m.Status.SignalURL)
	}
	port := strings.TrimSuffix(strings.TrimPrefix(m.Status.SignalURL, "ws://127.0.0.1:"), "/ws")
	if _, err := strconv.Atoi(port); err != nil {
		t.Fatalf("signalURL %q: %v", m.Status.SignalURL, err)
	}

	// The room's SFU as the operator rendered it, on the node port (there
	// is no kube-proxy), with the key of the room Secret.
	var dep appsv1.Deployment
	if err := c.client.Get(ctx, client.ObjectKey{Namespace: ns, Name: controllers.SFUName(name)}, &dep); err != nil {
		t.Fatal(err)
	}
	var sec corev1.Secret
	if err := c.client.Get(ctx, client.ObjectKey{Namespace: ns, Name: controllers.SecretName(name)}, &sec); err != nil {
		t.Fatal(err)
	}
	var args []string
	for _, a := range dep.Spec.Template.Spec.Containers[0].Args {
		if strings.HasPrefix(a, "--http-addr=") {
			a = "--http-addr=127.0.0.1:" + port
		}
		args = append(args, a)
	}
	sfu := start(t, []string{"MEETING_TOKEN_KEY=" + string(sec.Data[controllers.SecretTokenKey])}, append(args, "--udp-ip=127.0.0.1")...)
	sfu.logLine(t, "listening")

	// Join through the API: the proxied signalling path on the API's
	// origin, a token the SFU accepts.
	j, err := root.Join(ctx, live.Identity)
	if err != nil {
		t.Fatalf("join: %v", err)
	}
	want := "ws://" + strings.TrimPrefix(base, "http://") + "/rooms/" + live.Identity + "/ws"
	if j.SignalURL != want {
		t.Fatalf("signal_url %q, want %q", j.SignalURL, want)
	}
	jctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cl, err := mclient.Join(jctx, mclient.Options{URL: j.SignalURL, Token: j.Token})
	if err != nil {
		t.Fatalf("join the SFU through the API's proxy: %v", err)
	}
	if cl.Room() != live.Identity {
		t.Errorf("joined room %q, want %q", cl.Room(), live.Identity)
	}
	// A token of another room is refused by the SFU, through the proxy too.
	bad, err := mclient.Join(jctx, mclient.Options{URL: j.SignalURL, Token: j.Token + "x"})
	if err == nil {
		bad.Close()
		t.Error("the SFU accepted a forged token")
	}
	cl.Close()

	api.stop(t)
	op.stop(t)
	sfu.stop(t)
	// The leader released its Lease on SIGTERM.
	if holder := c.kubectlOK(t, "", "-n", ns, "get", "lease", "meeting-api-sync", "-o", "jsonpath={.spec.holderIdentity}"); holder != "" {
		t.Errorf("the Lease is still held by %q after the API stopped", holder)
	}
}

// startSyncingAPI starts `meeting api` on dbURL syncing with the cluster's
// namespace ns (root's password first-admin-pw), and waits until it logs
// that it syncs there and /readyz answers 200. It returns the process and
// the API's base URL.
func startSyncingAPI(tb testing.TB, c *cluster, dbURL, ns string, args ...string) (*process, string) {
	tb.Helper()
	api := start(tb, []string{"MEETING_HTTP_ADDR=127.0.0.1:0", "MEETING_ADMIN_PASSWORD=first-admin-pw", "MEETING_LOG_FORMAT=json",
		"MEETING_DATABASE_URL=" + dbURL, "MEETING_JWT_SECRET=" + strings.Repeat("j", 32)},
		append([]string{"api", "--kubeconfig=" + c.env.Kubeconfig, "--namespace=" + ns}, args...)...)
	base := api.logLine(tb, "listening")["addr"].(string)
	if rec := api.logLine(tb, "syncing with the cluster"); rec["namespace"] != ns {
		tb.Fatalf("sync log line %v", rec)
	}
	waitFor(tb, "/readyz", func() error {
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/readyz %d", resp.StatusCode)
		}
		return nil
	})
	return api, base
}
