package controllers_test

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"

	rtcv1alpha1 "meeting.dev/meeting/api/v1alpha1"
)

// kubectl runs the real kubectl against the test control plane.
func kubectl(t *testing.T, args ...string) string {
	t.Helper()
	bin, err := shared.env.Tool("kubectl")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"--kubeconfig", shared.env.Kubeconfig}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("kubectl %s: %v\n%s%s", strings.Join(args, " "), err, out.String(), errb.String())
	}
	return out.String()
}

// TestSamples applies config/samples/ with kubectl and reads it back with
// `kubectl get mtg`, with the operator running on a clock before the sample's
// beginAt.
func TestSamples(t *testing.T) {
	ns := newNamespace(t)
	startManager(t, ns, clocktesting.NewFakeClock(t0), testConfig())

	out := kubectl(t, "apply", "-n", ns, "-f", filepath.Join(shared.env.Root, "config", "samples")+"/")
	if !strings.Contains(out, "meeting.rtc.meeting.dev/design-review created") {
		t.Fatalf("kubectl apply said:\n%s", out)
	}
	waitPhase(t, ns, "design-review", rtcv1alpha1.PhaseScheduled)

	out = kubectl(t, "get", "mtg", "-n", ns)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("kubectl get mtg:\n%s", out)
	}
	if got := strings.Fields(lines[0]); strings.Join(got, " ") != "NAME PHASE BEGIN END PARTICIPANTS AGE" {
		t.Errorf("columns %v", got)
	}
	row := strings.Fields(lines[1])
	if len(row) != 6 || row[0] != "design-review" || row[1] != "Scheduled" ||
		row[2] != "2030-06-03T09:00:00Z" || row[3] != "2030-06-03T10:00:00Z" || row[4] != "4" {
		t.Errorf("row %v", row)
	}

	// -o wide adds the room's limit.
	out = kubectl(t, "get", "mtg", "-n", ns, "-o", "wide")
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 2 || !strings.Contains(lines[0], "MAX") || strings.Fields(lines[1])[5] != "8" {
		t.Errorf("kubectl get mtg -o wide:\n%s", out)
	}

	// Applying again changes nothing.
	out = kubectl(t, "apply", "-n", ns, "-f", filepath.Join(shared.env.Root, "config", "samples")+"/")
	if !strings.Contains(out, "design-review unchanged") {
		t.Errorf("second apply said:\n%s", out)
	}
	// The short name and the category both find it.
	if out := kubectl(t, "get", "meeting", "-n", ns, "-o", "name"); strings.TrimSpace(out) != "meeting.rtc.meeting.dev/design-review" {
		t.Errorf("kubectl get meeting -o name: %q", out)
	}
}

// TestInstallManifests applies config/ (CRD, RBAC, operator Deployment) with
// kubectl and checks, as the operator's ServiceAccount, that the generated
// ClusterRole grants what the operator uses and nothing more.
func TestInstallManifests(t *testing.T) {
	out := kubectl(t, "apply", "-k", filepath.Join(shared.env.Root, "config"))
	for _, want := range []string{
		"customresourcedefinition.apiextensions.k8s.io/meetings.rtc.meeting.dev",
		"clusterrole.rbac.authorization.k8s.io/meeting-operator",
		"deployment.apps/meeting-operator",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("kubectl apply -k config/ did not mention %s:\n%s", want, out)
		}
	}
	ns := newNamespace(t)
	sa := "system:serviceaccount:meeting-system:meeting-operator"
	for _, tt := range []struct {
		verb, resource string
		want           string
	}{
		{"watch", "meetings.rtc.meeting.dev", "yes"},
		{"update", "meetings.rtc.meeting.dev/finalizers", "yes"},
		{"patch", "meetings.rtc.meeting.dev/status", "yes"},
		{"update", "meetings.rtc.meeting.dev/status", "no"},
		{"create", "deployments.apps", "yes"},
		{"delete", "services", "yes"},
		{"create", "secrets", "yes"},
		{"create", "events.events.k8s.io", "yes"},
		{"create", "meetings.rtc.meeting.dev", "no"},
		{"delete", "meetings.rtc.meeting.dev", "no"},
		{"create", "pods", "no"},
		{"get", "configmaps", "no"},
		{"patch", "secrets", "no"},
	} {
		got := canI(t, sa, ns, tt.verb, tt.resource)
		if got != tt.want {
			t.Errorf("operator can %s %s: %s, want %s", tt.verb, tt.resource, got, tt.want)
		}
	}
	if got := canI(t, sa, "meeting-system", "update", "leases.coordination.k8s.io"); got != "yes" {
		t.Errorf("operator cannot update its leader election Lease: %s", got)
	}
}

// canI asks the API server whether user may verb resource in ns ("yes"/"no").
func canI(t *testing.T, user, ns, verb, resource string) string {
	t.Helper()
	bin, err := shared.env.Tool("kubectl")
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"--kubeconfig", shared.env.Kubeconfig, "auth", "can-i", verb, resource, "-n", ns, "--as", user}
	if res, sub, ok := strings.Cut(resource, "/"); ok {
		args[5] = res
		args = append(args, "--subresource", sub)
	}
	cmd := exec.Command(bin, args...)
	var errb strings.Builder
	cmd.Stderr = &errb
	out, _ := cmd.Output() // exit status 1 means "no"
	if errb.Len() > 0 {
		t.Logf("kubectl %s: %s", strings.Join(args[2:], " "), errb.String())
	}
	return strings.TrimSpace(string(out))
}
