package main

import (
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// apiArgs are the flags every api role test needs besides its own.
func apiArgs(extra ...string) []string {
	return append([]string{"--jwt-secret", strings.Repeat("s", 40), "--database-url", "mysql://u:p@127.0.0.1:3306/m"}, extra...)
}

// The sync's flags of the contract: defaults, flags and environment, and
// validation with the flag's name.
func TestAPISyncConfig(t *testing.T) {
	for _, c := range []struct {
		name string
		args []string
		env  map[string]string
		err  string
		want func(syncConfig) bool
	}{
		{name: "defaults", want: func(s syncConfig) bool {
			return s.enabled && s.leaderElect && s.leaderElectionID == "meeting-api-sync" && s.resyncPeriod == 5*time.Minute &&
				s.kubeconfig == "" && s.namespace == "" && len(s.allowedOrigins) == 0 && s.maxSignalConns == 2000
		}},
		{name: "flags", args: []string{"--sync=false", "--kubeconfig", "/k", "--namespace", "meetings", "--leader-elect=false",
			"--leader-election-id", "x", "--resync-period", "1m", "--allowed-origins", "https://a.example,https://b.example:8443",
			"--allowed-origins", "http://c.example", "--max-signal-conns", "10"},
			want: func(s syncConfig) bool {
				return !s.enabled && s.kubeconfig == "/k" && s.namespace == "meetings" && !s.leaderElect && s.leaderElectionID == "x" &&
					s.resyncPeriod == time.Minute && s.maxSignalConns == 10 &&
					slices.Equal(s.allowedOrigins, []string{"https://a.example", "https://b.example:8443", "http://c.example"})
			}},
		{name: "environment", env: map[string]string{"MEETING_SYNC": "false", "MEETING_NAMESPACE": "ns1", "MEETING_ALLOWED_ORIGINS": "https://a.example"},
			want: func(s syncConfig) bool {
				return !s.enabled && s.namespace == "ns1" && slices.Equal(s.allowedOrigins, []string{"https://a.example"})
			}},
		{name: "bad namespace", args: []string{"--namespace", "Not_A_Label"}, err: "--namespace \"Not_A_Label\""},
		{name: "short resync", args: []string{"--resync-period", "1s"}, err: "--resync-period 1s"},
		{name: "no lease name", args: []string{"--leader-election-id", ""}, err: "--leader-election-id is empty"},
		{name: "no lease name without election", args: []string{"--leader-election-id", "", "--leader-elect=false"}, want: func(s syncConfig) bool { return !s.leaderElect }},
		{name: "bad origin", args: []string{"--allowed-origins", "meet.example"}, err: "--allowed-origins \"meet.example\""},
		{name: "origin with path", args: []string{"--allowed-origins", "https://meet.example/app"}, err: "want scheme://host[:port]"},
		{name: "no connections", args: []string{"--max-signal-conns", "0"}, err: "--max-signal-conns 0"},
	} {
		t.Run(c.name, func(t *testing.T) {
			for k, v := range c.env {
				t.Setenv(k, v)
			}
			cfg := apiConfig{sync: defaultSyncConfig()}
			fs := newFlagSet("meeting api", "", io.Discard, "")
			cfg.register(fs)
			err := parseFlags(fs, apiArgs(c.args...))
			if err == nil {
				err = cfg.validate()
			}
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("got %v, want an error with %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !c.want(cfg.sync) {
				t.Errorf("config %+v", cfg.sync)
			}
		})
	}
}

// Standalone has no sync flags: it never talks to a cluster.
func TestStandaloneHasNoSyncFlags(t *testing.T) {
	cfg := apiConfig{standalone: true}
	fs := newFlagSet("meeting", "", io.Discard, "")
	cfg.register(fs)
	for _, f := range []string{"sync", "kubeconfig", "namespace", "leader-elect", "resync-period", "max-signal-conns"} {
		if fs.Lookup(f) != nil {
			t.Errorf("standalone has --%s", f)
		}
	}
}

// The namespace: --namespace, else the pod's (service account file), else
// default.
func TestAPISyncNamespace(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "namespace")
	c := defaultSyncConfig()
	c.namespaceFile = file
	if got := c.resolveNamespace(); got != "default" {
		t.Errorf("no file: %q, want default", got)
	}
	if err := os.WriteFile(file, []byte("meetings\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := c.resolveNamespace(); got != "meetings" {
		t.Errorf("pod's namespace: %q, want meetings", got)
	}
	c.namespace = "given"
	if got := c.resolveNamespace(); got != "given" {
		t.Errorf("flag: %q, want given", got)
	}
}

// Which cluster configuration the api role syncs with: none with
// --sync=false or when nothing is found (MySQL alone), --kubeconfig, then
// $KUBECONFIG; never ~/.kube/config by accident. The client is limited to
// 50 requests/s, bursts of 100.
func TestAPISyncRestConfig(t *testing.T) {
	t.Setenv("KUBERNETES_SERVICE_HOST", "") // not in a cluster
	t.Setenv("KUBECONFIG", "")
	t.Setenv("HOME", t.TempDir())
	dir := t.TempDir()
	kc := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kc, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:6443"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`), 0o600); err != nil {
		t.Fatal(err)
	}
	c := defaultSyncConfig()
	if cfg, src, err := c.restConfig(); cfg != nil || err != nil || !strings.Contains(src, "no cluster configuration") {
		t.Errorf("nothing found: %v %q %v", cfg, src, err)
	}
	t.Setenv("KUBECONFIG", kc)
	cfg, src, err := c.restConfig()
	if err != nil || cfg == nil || cfg.Host != "https://127.0.0.1:6443" || !strings.HasPrefix(src, "$KUBECONFIG") {
		t.Fatalf("$KUBECONFIG: %v %q %v", cfg, src, err)
	}
	if cfg.QPS != 50 || cfg.Burst != 100 || cfg.UserAgent != "meeting-api" {
		t.Errorf("client limits %v/%d, agent %q", cfg.QPS, cfg.Burst, cfg.UserAgent)
	}
	c.enabled = false
	if cfg, src, err := c.restConfig(); cfg != nil || err != nil || src != "--sync=false" {
		t.Errorf("--sync=false: %v %q %v", cfg, src, err)
	}
	c.enabled, c.kubeconfig = true, filepath.Join(dir, "missing")
	if _, _, err := c.restConfig(); err == nil || !strings.Contains(err.Error(), "--kubeconfig") {
		t.Errorf("missing --kubeconfig: %v", err)
	}
}

// config/manager/api.yaml runs the api role with flags it has: each of its
// args parses (secrets read from files named there are not checked here).
func TestAPIDeploymentFlags(t *testing.T) {
	b, err := os.ReadFile("../../config/manager/api.yaml")
	if err != nil {
		t.Fatal(err)
	}
	doc, _, _ := strings.Cut(string(b), "\n---\n")
	var d appsv1.Deployment
	if err := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(doc), 4096).Decode(&d); err != nil {
		t.Fatal(err)
	}
	c := d.Spec.Template.Spec.Containers[0]
	if len(c.Args) == 0 || c.Args[0] != "api" {
		t.Fatalf("args %v, want the api role", c.Args)
	}
	cfg := apiConfig{sync: defaultSyncConfig()}
	fs := newFlagSet("meeting api", "", io.Discard, "")
	cfg.register(fs)
	if err := parseFlags(fs, c.Args[1:]); err != nil {
		t.Fatalf("api.yaml's args: %v", err)
	}
	if !cfg.sync.enabled || !cfg.sync.leaderElect || cfg.httpAddr != ":8080" || cfg.jwtSecretFile == "" || cfg.databaseURLFile == "" {
		t.Errorf("api.yaml's config %+v", cfg)
	}
	if d.Spec.Template.Spec.ServiceAccountName != "meeting-api" || d.Namespace != "meeting-system" {
		t.Errorf("service account %q in %q", d.Spec.Template.Spec.ServiceAccountName, d.Namespace)
	}
}
