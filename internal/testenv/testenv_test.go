package testenv

import (
	"encoding/json"
	"os/exec"
	"testing"
)

// The API server built by hack/install-k8s-tools.sh reports its version the
// way a release does: v1.37.2 is major "1", minor "37" (kubectl and clients
// compare the minor; a build that left it empty broke them).
func TestServerVersion(t *testing.T) {
	env, err := Start(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Error(err)
		}
	})
	kubectl, err := env.Tool("kubectl")
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.CommandContext(t.Context(), kubectl, "--kubeconfig", env.Kubeconfig, "version", "-o", "json").Output()
	if err != nil {
		t.Fatalf("kubectl version: %v\n%s", err, out)
	}
	type info struct{ Major, Minor, GitVersion string }
	var v struct {
		ClientVersion info `json:"clientVersion"`
		ServerVersion info `json:"serverVersion"`
	}
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatalf("kubectl version output: %v\n%s", err, out)
	}
	want := info{Major: "1", Minor: "37", GitVersion: "v1.37.2"}
	if v.ServerVersion != want {
		t.Errorf("server version = %+v, want %+v", v.ServerVersion, want)
	}
	if v.ClientVersion.GitVersion != want.GitVersion || v.ClientVersion.Minor != want.Minor {
		t.Errorf("kubectl version = %+v, want %s (minor %s)", v.ClientVersion, want.GitVersion, want.Minor)
	}
}
