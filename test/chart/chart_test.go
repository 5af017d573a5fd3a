package chart_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

func TestLintStrict(t *testing.T) {
	out := mustRun(t, nil, "helm", "lint", "--strict", chartDir())
	if !strings.Contains(out, "0 chart(s) failed") {
		t.Errorf("helm lint --strict:\n%s", out)
	}
	files, err := filepath.Glob(valuesFile("*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no values files in ci/: %v", err)
	}
	for _, f := range files {
		out := mustRun(t, nil, "helm", "lint", "--strict", chartDir(), "-f", f)
		if !strings.Contains(out, "0 chart(s) failed") {
			t.Errorf("helm lint --strict -f %s:\n%s", f, out)
		}
	}
}

// TestTemplateDryRunServer applies what helm template renders, with the
// default values and with every option on, to a real API server with
// --dry-run=server and strict field validation: unknown fields, bad enum
// values and invalid objects fail there.
func TestTemplateDryRunServer(t *testing.T) {
	kc := "--kubeconfig=" + env.Kubeconfig
	// The ServiceMonitor CRD (Prometheus Operator) first; the Meeting CRD is in place.
	mustRun(t, nil, "kubectl", kc, "apply", "-f", filepath.Join("testdata", "servicemonitor-crd.yaml"))
	mustRun(t, nil, "kubectl", kc, "wait", "--for=condition=Established", "crd/servicemonitors.monitoring.coreos.com", "--timeout=60s")
	for _, tc := range []struct {
		name, ns string
		args     []string
		want     []string // kinds that must be among the rendered objects
	}{
		{"defaults", "dry-defaults", nil,
			[]string{"CustomResourceDefinition", "Deployment", "StatefulSet", "Service", "Secret", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}},
		{"full", "dry-full", []string{"-f", valuesFile("full-values.yaml")},
			[]string{"CustomResourceDefinition", "Deployment", "Service", "Ingress", "PodDisruptionBudget", "ServiceMonitor", "ClusterRole", "Role"}},
		{"mariadb", "dry-mariadb", []string{"-f", valuesFile("mariadb-values.yaml")},
			[]string{"StatefulSet", "Secret"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			manifest := render(t, "meeting", tc.ns, tc.args...)
			kinds := map[string]bool{}
			for _, o := range objects(t, manifest) {
				kinds[o.GetKind()] = true
			}
			for _, k := range tc.want {
				if !kinds[k] {
					t.Errorf("no %s rendered", k)
				}
			}
			mustRun(t, nil, "kubectl", kc, "create", "namespace", tc.ns)
			out := mustRun(t, []byte(manifest), "kubectl", kc, "apply", "--dry-run=server", "--validate=strict", "-n", tc.ns, "-f", "-")
			if !strings.Contains(out, "(server dry run)") {
				t.Errorf("kubectl apply --dry-run=server printed:\n%s", out)
			}
			t.Logf("dry-run applied:\n%s", out)
		})
	}
}

// TestSchemaRejects gives the chart bad values: each fails helm template with
// a message that names the value.
func TestSchemaRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want []string // in the error, all of them
	}{
		{"negative replicas", []string{"--set", "api.replicas=-1"}, []string{"api", "replicas", "minimum"}},
		{"replicas of wrong type", []string{"--set-string", "operator.replicas=two"}, []string{"operator", "replicas", "integer"}},
		{"bad pull policy", []string{"--set", "image.pullPolicy=Sometimes"}, []string{"image", "pullPolicy", "Always"}},
		{"unknown key at top", []string{"--set", "replicaCount=2"}, []string{"replicaCount"}},
		{"unknown nested key", []string{"--set", "api.replica=2"}, []string{"api", "replica"}},
		{"typo in a deep key", []string{"--set", "mariadb.persistance.enabled=false"}, []string{"mariadb", "persistance"}},
		{"bad enum", []string{"--set", "media.serviceType=External"}, []string{"media", "serviceType", "ClusterIP"}},
		{"bad duration", []string{"--set", "media.leadTime=soon"}, []string{"media", "leadTime"}},
		{"bad log format", []string{"--set", "logFormat=xml"}, []string{"logFormat", "json"}},
		{"bad quantity", []string{"--set", "media.sfu.memory=lots"}, []string{"media", "sfu", "memory"}},
		{"bad origin", []string{"--set", "api.allowedOrigins[0]=meet.example.org"}, []string{"api", "allowedOrigins"}},
		{"two databases", []string{"--set", "database.existingSecret=mydb"}, []string{"database.existingSecret and mariadb.enabled are both set"}},
		{"no database", []string{"--set", "mariadb.enabled=false"}, []string{"no database: set database.existingSecret"}},
		{"NodePort without address", []string{"--set", "media.serviceType=NodePort"}, []string{"media.publicAddress"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := runTool(t, nil, "helm", append([]string{"template", "meeting", chartDir()}, tc.args...)...)
			if err == nil {
				t.Fatalf("helm template %v succeeded:\n%.400s", tc.args, out)
			}
			msg := err.Error()
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error lacks %q:\n%s", w, msg)
				}
			}
			t.Logf("%v: %s", tc.args, msg[strings.Index(msg, "\n")+1:])
		})
	}
}

// TestRBACMatchesGenerated: the chart's roles carry exactly the rules that
// make generate writes into config/rbac from the code's markers.
func TestRBACMatchesGenerated(t *testing.T) {
	objs := objects(t, render(t, "meeting", "meeting-system"))
	root := filepath.Dir(filepath.Dir(chartDir()))
	for _, tc := range []struct {
		kind, suffix, file string
	}{
		{"ClusterRole", "-operator-meeting-system", "config/rbac/role.yaml"},
		{"Role", "-operator-leader-election", "config/rbac/leader_election_role.yaml"},
		{"Role", "-api", "config/rbac/api/role.yaml"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			got := rulesOf(t, find(t, objs, tc.kind, tc.suffix))
			b, err := os.ReadFile(filepath.Join(root, tc.file))
			if err != nil {
				t.Fatalf("generated role: %v", err)
			}
			var role rbacv1.ClusterRole
			if err := utilyaml.Unmarshal(b, &role); err != nil {
				t.Fatalf("%s: %v", tc.file, err)
			}
			want := normalize(role.Rules)
			if len(want) == 0 {
				t.Fatalf("%s holds no rules", tc.file)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("rules of the chart's %s differ from %s:\nchart: %v\nfile:  %v", tc.kind, tc.file, got, want)
			}
		})
	}
}

func rulesOf(t *testing.T, o *unstructured.Unstructured) []string {
	t.Helper()
	var role rbacv1.ClusterRole
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &role); err != nil {
		t.Fatalf("%s %s: %v", o.GetKind(), o.GetName(), err)
	}
	return normalize(role.Rules)
}

// normalize expands rules into sorted group/resource/verb triples, so that
// rules that grant the same are equal however they are grouped.
func normalize(rules []rbacv1.PolicyRule) []string {
	var out []string
	for _, r := range rules {
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				for _, v := range r.Verbs {
					names, _ := json.Marshal(r.ResourceNames)
					out = append(out, g+"/"+res+":"+v+" "+string(names))
				}
			}
		}
		for _, u := range r.NonResourceURLs {
			for _, v := range r.Verbs {
				out = append(out, "url "+u+":"+v)
			}
		}
	}
	sort.Strings(out)
	return out
}

// TestLabels: every rendered object, cluster-scoped ones included, carries
// the standard labels, and pod templates the selector's.
func TestLabels(t *testing.T) {
	for name, args := range map[string][]string{
		"defaults": nil,
		"full":     {"-f", valuesFile("full-values.yaml")},
		"mariadb":  {"-f", valuesFile("mariadb-values.yaml")},
	} {
		t.Run(name, func(t *testing.T) {
			objs := objects(t, render(t, "rel1", "ns1", args...))
			if len(objs) < 10 {
				t.Fatalf("only %d objects rendered", len(objs))
			}
			for _, o := range objs {
				l := o.GetLabels()
				for _, k := range []string{"app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/version",
					"app.kubernetes.io/component", "app.kubernetes.io/managed-by", "helm.sh/chart"} {
					if l[k] == "" {
						t.Errorf("%s %s has no label %s", o.GetKind(), o.GetName(), k)
					}
				}
				if l["app.kubernetes.io/instance"] != "rel1" || l["app.kubernetes.io/managed-by"] != "Helm" {
					t.Errorf("%s %s: instance %q, managed-by %q", o.GetKind(), o.GetName(), l["app.kubernetes.io/instance"], l["app.kubernetes.io/managed-by"])
				}
				if ns := o.GetNamespace(); ns != "" && ns != "ns1" {
					t.Errorf("%s %s in namespace %q, not the release's", o.GetKind(), o.GetName(), ns)
				}
				if tl, ok, _ := unstructured.NestedStringMap(o.Object, "spec", "template", "metadata", "labels"); ok {
					sel, _, _ := unstructured.NestedStringMap(o.Object, "spec", "selector", "matchLabels")
					for k, v := range sel {
						if tl[k] != v {
							t.Errorf("%s %s: pod template lacks selector label %s=%s", o.GetKind(), o.GetName(), k, v)
						}
					}
				}
			}
		})
	}
}

// TestCRD: the chart's CRD is config/crd/bases' one, kept on uninstall unless
// crds.keep=false, and absent with crds.enabled=false.
func TestCRD(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(filepath.Dir(filepath.Dir(chartDir())), "config", "crd", "bases", "rtc.meeting.dev_meetings.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var want map[string]any
	if err := utilyaml.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	crd := find(t, objects(t, render(t, "meeting", "meeting-system")), "CustomResourceDefinition", "meetings.rtc.meeting.dev")
	if !reflect.DeepEqual(viaJSON(t, crd.Object["spec"]), viaJSON(t, want["spec"])) {
		t.Error("the chart's CRD spec differs from config/crd/bases (run make generate)")
	}
	if got := crd.GetAnnotations()["helm.sh/resource-policy"]; got != "keep" {
		t.Errorf("default resource-policy %q, want keep", got)
	}
	crd = find(t, objects(t, render(t, "meeting", "meeting-system", "--set", "crds.keep=false")), "CustomResourceDefinition", "meetings.rtc.meeting.dev")
	if _, ok := crd.GetAnnotations()["helm.sh/resource-policy"]; ok {
		t.Error("crds.keep=false still keeps the CRD")
	}
	for _, o := range objects(t, render(t, "meeting", "meeting-system", "--set", "crds.enabled=false")) {
		if o.GetKind() == "CustomResourceDefinition" {
			t.Error("crds.enabled=false renders the CRD")
		}
	}
}

// TestPodsHardened: every container runs as non-root with a read-only root
// filesystem, no capabilities and seccomp RuntimeDefault, and the API reads
// its secrets from files, not flags.
func TestPodsHardened(t *testing.T) {
	objs := objects(t, render(t, "meeting", "meeting-system"))
	var pods int
	for _, o := range objs {
		spec, ok, _ := unstructured.NestedMap(o.Object, "spec", "template", "spec")
		if !ok {
			continue
		}
		pods++
		psc, _, _ := unstructured.NestedMap(spec, "securityContext")
		if psc["runAsNonRoot"] != true {
			t.Errorf("%s %s: pod not runAsNonRoot", o.GetKind(), o.GetName())
		}
		if st, _, _ := unstructured.NestedString(psc, "seccompProfile", "type"); st != "RuntimeDefault" {
			t.Errorf("%s %s: seccomp %q", o.GetKind(), o.GetName(), st)
		}
		containers, _, _ := unstructured.NestedSlice(spec, "containers")
		for _, c := range containers {
			c := c.(map[string]any)
			sc, _, _ := unstructured.NestedMap(c, "securityContext")
			drop, _, _ := unstructured.NestedStringSlice(sc, "capabilities", "drop")
			if sc["readOnlyRootFilesystem"] != true || sc["allowPrivilegeEscalation"] != false || !reflect.DeepEqual(drop, []string{"ALL"}) {
				t.Errorf("%s %s container %s: securityContext %v", o.GetKind(), o.GetName(), c["name"], sc)
			}
		}
	}
	if pods != 3 {
		t.Errorf("%d pod templates, want 3 (operator, API, MariaDB)", pods)
	}
	api := find(t, objs, "Deployment", "-api")
	args, _, _ := unstructured.NestedSlice(api.Object, "spec", "template", "spec", "containers")
	joined := strings.Join(toStrings(args[0].(map[string]any)["args"]), " ")
	for _, w := range []string{"--database-url-file=/etc/meeting/database/url", "--jwt-secret-file=/etc/meeting/jwt/jwt-secret",
		"--admin-password-file=/etc/meeting/admin/password", "--namespace=meeting-system", "--sync=true"} {
		if !strings.Contains(joined, w) {
			t.Errorf("API args lack %s: %s", w, joined)
		}
	}
}

// viaJSON returns v as encoding/json decodes it (every number a float64), so
// that values decoded by different YAML decoders compare equal.
func viaJSON(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func toStrings(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}
