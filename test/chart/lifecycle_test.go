package chart_test

import (
	"context"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// releaseObjects lists, by kind, the names of the objects of release rel
// (label app.kubernetes.io/instance) in ns and cluster-wide.
func releaseObjects(ctx context.Context, t *testing.T, cs kubernetes.Interface, ns, rel string) map[string][]string {
	t.Helper()
	sel := metav1.ListOptions{LabelSelector: "app.kubernetes.io/instance=" + rel}
	out := map[string][]string{}
	add := func(kind string, list runtime.Object, err error) {
		names, err := namesOf(list, err)
		if err != nil {
			t.Fatalf("list %s: %v", kind, err)
		}
		if len(names) > 0 {
			out[kind] = names
		}
	}
	d, err := cs.AppsV1().Deployments(ns).List(ctx, sel)
	add("Deployment", d, err)
	s, err := cs.AppsV1().StatefulSets(ns).List(ctx, sel)
	add("StatefulSet", s, err)
	svc, err := cs.CoreV1().Services(ns).List(ctx, sel)
	add("Service", svc, err)
	sec, err := cs.CoreV1().Secrets(ns).List(ctx, sel)
	add("Secret", sec, err)
	// Helm's own release records too: uninstall removes them (no --keep-history).
	hs, err := cs.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{LabelSelector: "owner=helm,name=" + rel})
	add("helm release Secret", hs, err)
	sa, err := cs.CoreV1().ServiceAccounts(ns).List(ctx, sel)
	add("ServiceAccount", sa, err)
	r, err := cs.RbacV1().Roles(ns).List(ctx, sel)
	add("Role", r, err)
	rb, err := cs.RbacV1().RoleBindings(ns).List(ctx, sel)
	add("RoleBinding", rb, err)
	cr, err := cs.RbacV1().ClusterRoles().List(ctx, sel)
	add("ClusterRole", cr, err)
	crb, err := cs.RbacV1().ClusterRoleBindings().List(ctx, sel)
	add("ClusterRoleBinding", crb, err)
	pdb, err := cs.PolicyV1().PodDisruptionBudgets(ns).List(ctx, sel)
	add("PodDisruptionBudget", pdb, err)
	ing, err := cs.NetworkingV1().Ingresses(ns).List(ctx, sel)
	add("Ingress", ing, err)
	return out
}

// namesOf returns the names of a typed list's items.
func namesOf(list runtime.Object, err error) ([]string, error) {
	if err != nil {
		return nil, err
	}
	items, err := meta.ExtractList(list)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, it := range items {
		a, err := meta.Accessor(it)
		if err != nil {
			return nil, err
		}
		names = append(names, a.GetName())
	}
	return names, nil
}

func clientset(t *testing.T, cfg *rest.Config) kubernetes.Interface {
	t.Helper()
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

func argsOf(t *testing.T, cs kubernetes.Interface, ns, name string) string {
	t.Helper()
	d, err := cs.AppsV1().Deployments(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(d.Spec.Template.Spec.Containers[0].Args, " ")
}

// TestInstallUpgradeUninstall installs a release on the envtest API server
// (nothing runs pods there: this checks the objects), upgrades it with
// changed values and uninstalls it. The CRD is envtest's, so crds.enabled=false
// here; install_test.go installs it from the chart on the local cluster.
func TestInstallUpgradeUninstall(t *testing.T) {
	ctx := context.Background()
	cs := clientset(t, env.Config)
	const ns, rel = "life", "life"
	kc := "--kubeconfig=" + env.Kubeconfig
	mustRun(t, nil, "helm", kc, "install", rel, chartDir(), "-n", ns, "--create-namespace",
		"--set", "crds.enabled=false", "--set", "mariadb.persistence.enabled=false", "--set", "podDisruptionBudget.enabled=true",
		"--set", "ingress.enabled=true", "--set", "ingress.hosts[0].host=meet.example.org")
	got := releaseObjects(ctx, t, cs, ns, rel)
	for _, kind := range []string{"Deployment", "StatefulSet", "Service", "Secret", "ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding", "PodDisruptionBudget", "Ingress"} {
		if len(got[kind]) == 0 {
			t.Errorf("install made no %s: %v", kind, got)
		}
	}
	secrets := secretData(ctx, t, cs, ns, got["Secret"])
	for name, data := range secrets {
		for k, v := range data {
			if len(v) < 20 {
				t.Errorf("generated %s/%s is %d bytes", name, k, len(v))
			}
		}
	}
	apiArgs, opArgs := argsOf(t, cs, ns, "life-meeting-api"), argsOf(t, cs, ns, "life-meeting-operator")

	// NOTES.txt tells how to reach the page and read root's password.
	notes := mustRun(t, nil, "helm", kc, "get", "notes", rel, "-n", ns)
	for _, w := range []string{"http://meet.example.org/", "get secret life-meeting-admin", "base64 -d", "Log in as root"} {
		if !strings.Contains(notes, w) {
			t.Errorf("NOTES lack %q:\n%s", w, notes)
		}
	}

	// An upgrade with changed values changes both pod templates (so both roll
	// out) and keeps every generated secret.
	mustRun(t, nil, "helm", kc, "upgrade", rel, chartDir(), "-n", ns, "--reuse-values", "--set", "media.leadTime=30s")
	if a := argsOf(t, cs, ns, "life-meeting-api"); a == apiArgs || !strings.Contains(a, "--lead-time=30s") {
		t.Errorf("API args after upgrade: %s", a)
	}
	if o := argsOf(t, cs, ns, "life-meeting-operator"); o == opArgs || !strings.Contains(o, "--lead-time=30s") {
		t.Errorf("operator args after upgrade: %s", o)
	}
	after := secretData(ctx, t, cs, ns, got["Secret"])
	for name, data := range secrets {
		for k, v := range data {
			if after[name][k] != v {
				t.Errorf("upgrade changed the generated %s/%s", name, k)
			}
		}
	}

	mustRun(t, nil, "helm", kc, "uninstall", rel, "-n", ns, "--wait")
	if left := releaseObjects(ctx, t, cs, ns, rel); len(left) > 0 {
		t.Errorf("helm uninstall left %v", left)
	}
}

// secretData reads the data of the named Secrets.
func secretData(ctx context.Context, t *testing.T, cs kubernetes.Interface, ns string, names []string) map[string]map[string]string {
	t.Helper()
	out := map[string]map[string]string{}
	for _, n := range names {
		s, err := cs.CoreV1().Secrets(ns).Get(ctx, n, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		out[n] = map[string]string{}
		for k, v := range s.Data {
			out[n][k] = string(v)
		}
	}
	return out
}

// TestExistingSecretsRoll: with your own Secrets (existingSecret), the API's
// pod template carries a checksum of each; changing a Secret's data and
// running helm upgrade rolls the API. Uninstall leaves your Secrets alone.
func TestExistingSecretsRoll(t *testing.T) {
	ctx := context.Background()
	cs := clientset(t, env.Config)
	const ns, rel = "ext", "ext"
	kc := "--kubeconfig=" + env.Kubeconfig
	mustRun(t, nil, "kubectl", kc, "create", "namespace", ns)
	for name, data := range map[string]string{"db": "mysql://u:p@db.example.org:3306/meeting", "jwt": strings.Repeat("k", 40), "admin": "root-password-1"} {
		mustRun(t, nil, "kubectl", kc, "-n", ns, "create", "secret", "generic", name, "--from-literal=value="+data)
	}
	mustRun(t, nil, "helm", kc, "install", rel, chartDir(), "-n", ns, "--set", "crds.enabled=false", "--set", "mariadb.enabled=false",
		"--set", "database.existingSecret=db", "--set", "database.existingSecretKey=value",
		"--set", "jwt.existingSecret=jwt", "--set", "jwt.existingSecretKey=value",
		"--set", "adminPassword.existingSecret=admin", "--set", "adminPassword.existingSecretKey=value")
	annotations := func() map[string]string {
		d, err := cs.AppsV1().Deployments(ns).Get(ctx, "ext-meeting-api", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return d.Spec.Template.Annotations
	}
	before := annotations()
	for _, k := range []string{"checksum/database", "checksum/jwt", "checksum/admin"} {
		if before[k] == "" {
			t.Errorf("no %s on the API's pods: %v", k, before)
		}
	}
	if got := releaseObjects(ctx, t, cs, ns, rel)["Secret"]; len(got) != 0 {
		t.Errorf("the release made Secrets although all are given: %v", got)
	}
	mustRun(t, nil, "kubectl", kc, "-n", ns, "patch", "secret", "jwt", "--type=merge", "-p", `{"stringData":{"value":"`+strings.Repeat("n", 40)+`"}}`)
	mustRun(t, nil, "helm", kc, "upgrade", rel, chartDir(), "-n", ns, "--reuse-values")
	after := annotations()
	if after["checksum/jwt"] == before["checksum/jwt"] {
		t.Errorf("checksum/jwt unchanged after the Secret changed: %s", after["checksum/jwt"])
	}
	if after["checksum/database"] != before["checksum/database"] || after["checksum/admin"] != before["checksum/admin"] {
		t.Errorf("checksums of unchanged Secrets changed: %v -> %v", before, after)
	}
	mustRun(t, nil, "helm", kc, "uninstall", rel, "-n", ns, "--wait")
	for _, name := range []string{"db", "jwt", "admin"} {
		if _, err := cs.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{}); err != nil {
			t.Errorf("your Secret %s after uninstall: %v", name, err)
		}
	}
}
