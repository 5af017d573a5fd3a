package chart_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rtcv1alpha1 "meeting.dev/meeting/api/v1alpha1"
	"meeting.dev/meeting/internal/testenv"
	"meeting.dev/meeting/test/testbin"
)

// cluster is a local cluster of hack/local-cluster.sh with its own state
// directory, for one test.
type cluster struct {
	kubeconfig string
	cs         kubernetes.Interface
	c          client.Client
}

// localCluster starts a local cluster in a directory of the test's own
// (MEETING_CLUSTER_DIR) and stops it when the test ends.
func localCluster(t *testing.T) *cluster {
	t.Helper()
	script := filepath.Join(testenv.Root(), "hack", "local-cluster.sh")
	dir := t.TempDir()
	envv := append(os.Environ(), "MEETING_CLUSTER_DIR="+dir)
	down := func() {
		cmd := exec.Command(script, "down")
		cmd.Env = envv
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("local-cluster.sh down: %v\n%s", err, out)
		}
	}
	start := time.Now()
	cmd := exec.Command(script, "up")
	cmd.Env = envv
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	t.Cleanup(down)    // registered after TempDir: runs before its removal
	t.Cleanup(func() { // runs before down
		if t.Failed() {
			logTails(t, filepath.Join(dir, "logs"), "kwok", "kube-controller-manager", "kube-scheduler")
		}
	})
	if err != nil {
		t.Fatalf("local-cluster.sh up: %v\n%s\n%s", err, out, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	kc := lines[len(lines)-1]
	if _, err := os.Stat(kc); err != nil {
		t.Fatalf("local-cluster.sh up: last line %q is no kubeconfig: %v", kc, err)
	}
	t.Logf("local cluster up in %s: %s", time.Since(start).Round(time.Second), kc)
	cfg, err := clientcmd.BuildConfigFromFlags("", kc)
	if err != nil {
		t.Fatal(err)
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := rtcv1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	return &cluster{kubeconfig: kc, cs: clientset(t, cfg), c: c}
}

// logTails logs the last lines of the local cluster's component logs: a
// pod the fake kubelet (KWOK) never marks Ready, say, is explained there.
func logTails(t *testing.T, dir string, names ...string) {
	for _, name := range names {
		b, err := os.ReadFile(filepath.Join(dir, name+".log"))
		if err != nil {
			t.Logf("%s log: %v", name, err)
			continue
		}
		lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
		t.Logf("the last lines of %s.log:\n%s", name, strings.Join(lines[max(len(lines)-30, 0):], "\n"))
	}
}

// podStates tells the phase, readiness and latest event of each pod in ns.
func podStates(ctx context.Context, cl *cluster, ns string) string {
	pods, err := cl.cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return err.Error()
	}
	var states []string
	for _, p := range pods.Items {
		ready := "unknown"
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady {
				ready = string(c.Status)
			}
		}
		state := fmt.Sprintf("%s on %q %s ready=%s", p.Name, p.Spec.NodeName, p.Status.Phase, ready)
		if ev, err := cl.cs.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + p.Name}); err == nil && len(ev.Items) > 0 {
			last := ev.Items[len(ev.Items)-1]
			state += fmt.Sprintf(" (last event %s: %s)", last.Reason, last.Message)
		}
		states = append(states, state)
	}
	return strings.Join(states, "; ")
}

// eventually polls cond every half second until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for {
		ok, state := cond()
		if ok {
			return
		}
		if state != last {
			t.Logf("waiting for %s: %s", what, state)
			last = state
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s; last: %s", what, timeout, state)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// available reports whether a Deployment has rolled out completely.
func available(d *appsv1.Deployment) bool {
	if d.Status.ObservedGeneration < d.Generation {
		return false
	}
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	if d.Status.UpdatedReplicas != want || d.Status.AvailableReplicas != want || d.Status.Replicas != want {
		return false
	}
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentAvailable {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// operatorProcess runs `meeting operator` on this machine against the local
// cluster (KWOK's pods run nothing), with the arguments of the chart's
// operator Deployment and the credentials of the chart's operator
// ServiceAccount: it can do exactly what the chart lets the operator do.
func operatorProcess(t *testing.T, cl *cluster, ns, deployment, serviceAccount string) (stop func()) {
	t.Helper()
	ctx := context.Background()
	d, err := cl.cs.AppsV1().Deployments(ns).Get(ctx, deployment, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	args := d.Spec.Template.Spec.Containers[0].Args
	var run []string
	for _, a := range args {
		switch {
		case strings.HasPrefix(a, "--metrics-addr="), strings.HasPrefix(a, "--health-addr="):
			// the pod's ports: loopback-only and disabled here
			run = append(run, a[:strings.Index(a, "=")+1]+"0")
		default:
			run = append(run, a)
		}
	}
	// Outside a pod nothing tells the Lease's namespace.
	run = append(run, "--leader-election-namespace="+ns, "--kubeconfig="+serviceAccountKubeconfig(t, cl, ns, serviceAccount))
	bin := testbin.Meeting(t)
	cmd := exec.Command(bin, run...)
	var logs testbin.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Logf("operator process: meeting %s", strings.Join(run, " "))
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("operator log:\n%s", logs.String())
		}
	}
	t.Cleanup(stop)
	return stop
}

// serviceAccountKubeconfig writes a kubeconfig that reaches the local cluster
// as the ServiceAccount, with a token from the TokenRequest API.
func serviceAccountKubeconfig(t *testing.T, cl *cluster, ns, sa string) string {
	t.Helper()
	exp := int64(3600)
	tr, err := cl.cs.CoreV1().ServiceAccounts(ns).CreateToken(context.Background(), sa,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &exp}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("token of %s/%s: %v", ns, sa, err)
	}
	raw, err := clientcmd.LoadFromFile(cl.kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	for name, ai := range raw.AuthInfos {
		ai.ClientCertificate, ai.ClientKey, ai.ClientCertificateData, ai.ClientKeyData = "", "", nil, nil
		ai.Token = tr.Status.Token
		raw.AuthInfos[name] = ai
	}
	// Paths in the admin kubeconfig (the CA) stay valid: keep them absolute.
	for _, c := range raw.Clusters {
		if c.CertificateAuthority != "" && !filepath.IsAbs(c.CertificateAuthority) {
			c.CertificateAuthority = filepath.Join(filepath.Dir(cl.kubeconfig), c.CertificateAuthority)
		}
	}
	p := filepath.Join(t.TempDir(), sa+".kubeconfig")
	if err := clientcmd.WriteToFile(*raw, p); err != nil {
		t.Fatal(err)
	}
	return p
}

// documentedFinalizerLine returns the one-liner of docs/helm.md that drops
// the finalizers of a namespace's Meetings.
func documentedFinalizerLine(t *testing.T) string {
	t.Helper()
	f, err := os.Open(filepath.Join(testenv.Root(), "docs", "helm.md"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := sc.Text(); strings.Contains(l, "patch --type=merge") && strings.Contains(l, `"finalizers":null`) {
			return l
		}
	}
	t.Fatal("docs/helm.md has no finalizer one-liner")
	return ""
}

// TestInstallOnLocalCluster: the chart's whole life on the local cluster of
// hack/local-cluster.sh. helm install --wait; a Meeting due now gets its SFU
// and TURN Deployments rolled out, becomes Running with endpoints, then
// Ended with its children gone; helm upgrade rolls the operator and the API
// out; the finalizers' way out lets a namespace go once the operator is
// gone; helm uninstall leaves nothing of the release but the CRD and the
// Meetings.
//
// KWOK's pods run no container: the chart's operator, API and MariaDB pods
// become Ready without running. The operator runs here as a process of the
// test instead (operatorProcess), with the chart's arguments and
// ServiceAccount; the chart's own (fake) operator pod holds no Lease, so the
// process leads. The API process is not run: this test checks Kubernetes
// objects, not the API's behaviour (test/e2e and internal/sync do).
func TestInstallOnLocalCluster(t *testing.T) {
	ctx := context.Background()
	cl := localCluster(t)
	const ns, rel = "meeting-system", "meeting"
	kc := "--kubeconfig=" + cl.kubeconfig

	start := time.Now()
	mustRun(t, nil, "helm", kc, "install", rel, chartDir(), "-n", ns, "--create-namespace", "--wait", "--timeout=5m",
		"--set", "mariadb.persistence.enabled=false", // no storage provisioner here
		"--set", "media.leadTime=5s", "--set", "media.endGrace=5s")
	t.Logf("helm install --wait: %s", time.Since(start).Round(time.Second))
	for _, name := range []string{"meeting-operator", "meeting-api"} {
		d, err := cl.cs.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !available(d) {
			t.Errorf("Deployment %s not available after helm install --wait: %+v", name, d.Status)
		}
	}
	if _, err := cl.cs.AppsV1().StatefulSets(ns).Get(ctx, "meeting-mariadb", metav1.GetOptions{}); err != nil {
		t.Errorf("bundled MariaDB: %v", err)
	}

	stopOperator := operatorProcess(t, cl, ns, "meeting-operator", "meeting-operator")

	// A Meeting due now, over 30 s from now: Starting, Running, Ending, Ended.
	now := time.Now().UTC().Truncate(time.Second)
	mtg := &rtcv1alpha1.Meeting{
		ObjectMeta: metav1.ObjectMeta{Name: "standup", Namespace: ns},
		Spec: rtcv1alpha1.MeetingSpec{
			Title: "Stand-up", Creator: "alice", Participants: []string{"bob"},
			BeginAt: metav1.NewTime(now), EndAt: metav1.NewTime(now.Add(30 * time.Second)),
		},
	}
	applyMeeting(t, cl, mtg)
	children := metav1.ListOptions{LabelSelector: rtcv1alpha1.MeetingLabel + "=standup"}
	eventually(t, 3*time.Minute, "SFU and TURN Deployments rolled out", func() (bool, string) {
		l, err := cl.cs.AppsV1().Deployments(ns).List(ctx, children)
		if err != nil {
			return false, err.Error()
		}
		var ready []string
		for i := range l.Items {
			if available(&l.Items[i]) {
				ready = append(ready, l.Items[i].Name)
			}
		}
		return len(l.Items) == 2 && len(ready) == 2, fmt.Sprintf("%d Deployments, available: %v", len(l.Items), ready)
	})
	eventually(t, 3*time.Minute, "phase Running with endpoints", func() (bool, string) {
		m := getMeeting(t, cl, ns, "standup")
		return m.Status.Phase == rtcv1alpha1.PhaseRunning && m.Status.SignalURL != "" && len(m.Status.TURNURIs) > 0,
			fmt.Sprintf("phase %s, signalURL %q, turnURIs %v", m.Status.Phase, m.Status.SignalURL, m.Status.TURNURIs)
	})
	m := getMeeting(t, cl, ns, "standup")
	t.Logf("Running: signalURL %s, turnURIs %v", m.Status.SignalURL, m.Status.TURNURIs)
	eventually(t, 3*time.Minute, "phase Ended after endAt + grace, children gone", func() (bool, string) {
		m := getMeeting(t, cl, ns, "standup")
		d, err1 := cl.cs.AppsV1().Deployments(ns).List(ctx, children)
		s, err2 := cl.cs.CoreV1().Services(ns).List(ctx, children)
		sec, err3 := cl.cs.CoreV1().Secrets(ns).List(ctx, children)
		if err1 != nil || err2 != nil || err3 != nil {
			return false, fmt.Sprint(err1, err2, err3)
		}
		left := len(d.Items) + len(s.Items) + len(sec.Items)
		return m.Status.Phase == rtcv1alpha1.PhaseEnded && left == 0, fmt.Sprintf("phase %s, %d children", m.Status.Phase, left)
	})
	if ended := getMeeting(t, cl, ns, "standup").Status.EndedAt; ended == nil || ended.Time.Before(now.Add(35*time.Second)) {
		t.Errorf("endedAt %v: before endAt + grace (%s)", ended, now.Add(35*time.Second))
	}

	// helm upgrade with a changed value: both Deployments roll out (a new ReplicaSet each).
	before := map[string]string{}
	for _, name := range []string{"meeting-operator", "meeting-api"} {
		before[name] = currentReplicaSet(t, cl, ns, name)
	}
	mustRun(t, nil, "helm", kc, "upgrade", rel, chartDir(), "-n", ns, "--reuse-values", "--set", "media.endGrace=10s")
	for _, name := range []string{"meeting-operator", "meeting-api"} {
		eventually(t, 3*time.Minute, name+" rolled out with a new ReplicaSet", func() (bool, string) {
			rs := currentReplicaSet(t, cl, ns, name)
			d, err := cl.cs.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, err.Error()
			}
			args := strings.Join(d.Spec.Template.Spec.Containers[0].Args, " ")
			return rs != before[name] && available(d) && strings.Contains(args, "--end-grace=10s"),
				fmt.Sprintf("ReplicaSet %s (was %s), status %+v; pods: %s", rs, before[name], d.Status, podStates(ctx, cl, ns))
		})
		t.Logf("%s rolled out: ReplicaSet %s -> %s", name, before[name], currentReplicaSet(t, cl, ns, name))
	}

	// The way out of finalizers nobody removes: a running Meeting in its own
	// namespace holds the operator's finalizer (and the API's, put there as
	// the API would); the operator goes; the namespace is deleted and stays
	// Terminating until the documented line runs.
	const stuckNS = "meetings-stuck"
	if _, err := cl.cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: stuckNS}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Pods are refused until the namespace's default ServiceAccount exists,
	// and the ReplicaSet controller then backs off for long: wait for it as
	// a real cluster's user never has to (its controller manager is quick).
	eventually(t, 2*time.Minute, "the new namespace's default ServiceAccount", func() (bool, string) {
		_, err := cl.cs.CoreV1().ServiceAccounts(stuckNS).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, fmt.Sprint(err)
	})
	now = time.Now().UTC().Truncate(time.Second)
	applyMeeting(t, cl, &rtcv1alpha1.Meeting{
		ObjectMeta: metav1.ObjectMeta{Name: "review", Namespace: stuckNS, Finalizers: []string{"rtc.meeting.dev/api-sync"}},
		Spec: rtcv1alpha1.MeetingSpec{Title: "Review", Creator: "alice",
			BeginAt: metav1.NewTime(now), EndAt: metav1.NewTime(now.Add(time.Hour))},
	})
	eventually(t, 3*time.Minute, "the stuck namespace's Meeting Running with the operator's finalizer", func() (bool, string) {
		m := getMeeting(t, cl, stuckNS, "review")
		var rs []string
		if l, err := cl.cs.AppsV1().ReplicaSets(stuckNS).List(ctx, metav1.ListOptions{}); err == nil {
			for _, r := range l.Items {
				for _, c := range r.Status.Conditions {
					rs = append(rs, fmt.Sprintf("%s %s: %s", r.Name, c.Type, c.Message))
				}
				rs = append(rs, fmt.Sprintf("%s ready %d/%d", r.Name, r.Status.ReadyReplicas, r.Status.Replicas))
			}
		}
		return m.Status.Phase == rtcv1alpha1.PhaseRunning && len(m.Finalizers) == 2,
			fmt.Sprintf("phase %s, finalizers %v, ReplicaSets %v", m.Status.Phase, m.Finalizers, rs)
	})
	stopOperator()
	if err := cl.cs.CoreV1().Namespaces().Delete(ctx, stuckNS, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	// The namespace controller deletes the rest, then waits on the Meeting.
	eventually(t, 3*time.Minute, "namespace Terminating with only the Meeting left", func() (bool, string) {
		n, err := cl.cs.CoreV1().Namespaces().Get(ctx, stuckNS, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		d, _ := cl.cs.AppsV1().Deployments(stuckNS).List(ctx, metav1.ListOptions{})
		var remaining string
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NamespaceFinalizersRemaining && c.Status == corev1.ConditionTrue {
				remaining = c.Message
			}
		}
		return n.Status.Phase == corev1.NamespaceTerminating && remaining != "" && len(d.Items) == 0,
			fmt.Sprintf("phase %s, %d Deployments, finalizers remaining %q", n.Status.Phase, len(d.Items), remaining)
	})
	time.Sleep(5 * time.Second)
	if _, err := cl.cs.CoreV1().Namespaces().Get(ctx, stuckNS, metav1.GetOptions{}); err != nil {
		t.Fatalf("the namespace went without the way out: %v", err)
	}
	line := documentedFinalizerLine(t)
	sh := exec.Command("bash", "-euo", "pipefail", "-c", line)
	sh.Env = append(os.Environ(), "NS="+stuckNS, "KUBECONFIG="+cl.kubeconfig, "PATH="+env.Assets+":"+os.Getenv("PATH"))
	if out, err := sh.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", line, err, out)
	} else {
		t.Logf("%s\n%s", line, out)
	}
	eventually(t, 3*time.Minute, "the namespace gone after the documented line", func() (bool, string) {
		n, err := cl.cs.CoreV1().Namespaces().Get(ctx, stuckNS, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, ""
		}
		if err != nil {
			return false, err.Error()
		}
		return false, "phase " + string(n.Status.Phase)
	})

	// helm uninstall: nothing of the release is left but the CRD and the Meetings.
	mustRun(t, nil, "helm", kc, "uninstall", rel, "-n", ns, "--wait", "--timeout=5m")
	if left := releaseObjects(ctx, t, cl.cs, ns, rel); len(left) > 0 {
		t.Errorf("helm uninstall left %v", left)
	}
	var crd metav1.PartialObjectMetadata
	crd.SetGroupVersionKind(apiextensionsGVK)
	if err := cl.c.Get(ctx, client.ObjectKey{Name: "meetings.rtc.meeting.dev"}, &crd); err != nil {
		t.Errorf("the CRD went with the release: %v", err)
	}
	if m := getMeeting(t, cl, ns, "standup"); m.Status.Phase != rtcv1alpha1.PhaseEnded {
		t.Errorf("the Meeting after uninstall: phase %s", m.Status.Phase)
	}
}

func applyMeeting(t *testing.T, cl *cluster, m *rtcv1alpha1.Meeting) {
	t.Helper()
	if err := cl.c.Create(context.Background(), m); err != nil {
		t.Fatalf("create Meeting %s/%s: %v", m.Namespace, m.Name, err)
	}
}

func getMeeting(t *testing.T, cl *cluster, ns, name string) *rtcv1alpha1.Meeting {
	t.Helper()
	var m rtcv1alpha1.Meeting
	if err := cl.c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &m); err != nil {
		t.Fatalf("get Meeting %s/%s: %v", ns, name, err)
	}
	return &m
}

var rsHash = regexp.MustCompile(`^[a-z0-9]+$`)

var apiextensionsGVK = schema.GroupVersionKind{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition"}

func revision(rs *appsv1.ReplicaSet) int {
	n, _ := strconv.Atoi(rs.Annotations["deployment.kubernetes.io/revision"])
	return n
}

// currentReplicaSet returns the pod-template-hash of a Deployment's newest
// ReplicaSet.
func currentReplicaSet(t *testing.T, cl *cluster, ns, name string) string {
	t.Helper()
	ctx := context.Background()
	d, err := cl.cs.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sel := metav1.FormatLabelSelector(d.Spec.Selector)
	l, err := cl.cs.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		t.Fatal(err)
	}
	var newest *appsv1.ReplicaSet
	for i := range l.Items {
		rs := &l.Items[i]
		if newest == nil || revision(rs) > revision(newest) {
			newest = rs
		}
	}
	if newest == nil || !rsHash.MatchString(newest.Labels["pod-template-hash"]) {
		t.Fatalf("no ReplicaSet of %s", name)
	}
	return newest.Name
}
