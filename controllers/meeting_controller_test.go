package controllers_test

import (
	"context"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rtcv1alpha1 "meeting.dev/meeting/api/v1alpha1"
	"meeting.dev/meeting/controllers"
)

// t0 is where each test's fake clock starts.
var t0 = time.Date(2030, 1, 7, 9, 0, 0, 0, time.UTC)

// TestLifecycle walks one Meeting through its whole life on a fake clock:
// Scheduled with nothing running, children at beginAt − lead, Running once the
// Deployments are available, an extension that keeps the media, a manager
// restart that duplicates nothing, Ending after endAt and Ended after the grace.
func TestLifecycle(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	clk := clocktesting.NewFakeClock(t0)
	cfg := testConfig()
	mgr := startManager(t, ns, clk, cfg)

	begin, end := t0.Add(10*time.Minute), t0.Add(40*time.Minute)
	m := newMeeting(ns, "sync", begin, end)
	m.Spec.Identity = "room-42"
	if err := shared.client.Create(ctx, m); err != nil {
		t.Fatalf("create: %v", err)
	}

	// Future meeting: Scheduled, nothing runs, wake-up planned at beginAt − lead.
	got := waitPhase(t, ns, "sync", rtcv1alpha1.PhaseScheduled)
	if got.Status.NextTransitionAt == nil || !got.Status.NextTransitionAt.Time.Equal(begin.Add(-cfg.LeadTime)) {
		t.Errorf("nextTransitionAt = %v, want %v", got.Status.NextTransitionAt, begin.Add(-cfg.LeadTime))
	}
	if got.Status.Identity != "room-42" || got.Status.Participants != 3 {
		t.Errorf("status identity %q participants %d, want room-42 and 3", got.Status.Identity, got.Status.Participants)
	}
	if c := listChildren(t, ns); c.count() != 0 {
		t.Fatalf("children before the lead time: %+v", c)
	}
	waitEvent(t, ns, "sync", "Scheduled")

	// One second short of the lead time: still nothing.
	clk.SetTime(begin.Add(-cfg.LeadTime - time.Second))
	time.Sleep(200 * time.Millisecond)
	if c := listChildren(t, ns); c.count() != 0 {
		t.Fatalf("children a second before the lead time: %d", c.count())
	}

	// Clock at beginAt − lead: the alarm fires and every child appears.
	clk.SetTime(begin.Add(-cfg.LeadTime))
	got = waitPhase(t, ns, "sync", rtcv1alpha1.PhaseStarting)
	var kids childSet
	eventually(t, "children created", func() error {
		kids = listChildren(t, ns)
		if len(kids.deployments) != 2 || len(kids.services) != 2 || len(kids.secrets) != 1 {
			return fmt.Errorf("have %d deployments, %d services, %d secrets", len(kids.deployments), len(kids.services), len(kids.secrets))
		}
		return nil
	})
	checkChildren(t, got, kids, cfg)
	if !slices.Contains(got.Finalizers, rtcv1alpha1.MediaFinalizer) {
		t.Errorf("finalizers %v lack %s", got.Finalizers, rtcv1alpha1.MediaFinalizer)
	}
	if c := meta.FindStatusCondition(got.Status.Conditions, rtcv1alpha1.ConditionReady); c == nil || c.Status != metav1.ConditionFalse {
		t.Errorf("Ready condition while starting: %+v", c)
	}
	waitEvent(t, ns, "sync", "Starting")
	// The fake clock stood exactly at beginAt − lead: one start, lag zero.
	if n, sum := mgr.metric(t, "meeting_media_start_lag_seconds"); n != 1 || sum != 0 {
		t.Errorf("start lag histogram: %v samples, sum %v; want 1 and 0", n, sum)
	}
	if n, _ := mgr.metric(t, "meeting_phase_transitions_total", "phase", "Starting"); n != 1 {
		t.Errorf("transitions to Starting: %v", n)
	}

	// Deployments become available: Running, with endpoints.
	markAvailable(t, ns, "sync-sfu")
	markAvailable(t, ns, "sync-turn")
	got = waitPhase(t, ns, "sync", rtcv1alpha1.PhaseRunning)
	if want := "ws://sync-sfu." + ns + ".svc:7880/ws"; got.Status.SignalURL != want {
		t.Errorf("signalURL %q, want %q", got.Status.SignalURL, want)
	}
	wantTURN := []string{
		"turn:sync-turn." + ns + ".svc:3478?transport=udp",
		"turn:sync-turn." + ns + ".svc:3478?transport=tcp",
	}
	if !slices.Equal(got.Status.TURNURIs, wantTURN) {
		t.Errorf("turnURIs %v, want %v", got.Status.TURNURIs, wantTURN)
	}
	if got.Status.StartedAt == nil || !got.Status.StartedAt.Time.Equal(begin.Add(-cfg.LeadTime)) {
		t.Errorf("startedAt %v, want the fake clock's %v", got.Status.StartedAt, begin.Add(-cfg.LeadTime))
	}
	if c := meta.FindStatusCondition(got.Status.Conditions, rtcv1alpha1.ConditionReady); c == nil || c.Status != metav1.ConditionTrue {
		t.Errorf("Ready condition while running: %+v", c)
	}
	waitEvent(t, ns, "sync", "Running")

	// Extend endAt: re-planned, and the media is left alone (no write at all).
	before := listChildren(t, ns)
	newEnd := end.Add(30 * time.Minute)
	eventually(t, "extend endAt", func() error {
		m := getMeeting(t, ns, "sync")
		m.Spec.EndAt = metav1.NewTime(newEnd)
		return shared.client.Update(ctx, m)
	})
	got = waitPhase(t, ns, "sync", rtcv1alpha1.PhaseRunning)
	if got.Status.NextTransitionAt == nil || !got.Status.NextTransitionAt.Time.Equal(newEnd) {
		t.Errorf("nextTransitionAt %v after extension, want %v", got.Status.NextTransitionAt, newEnd)
	}
	sameChildren(t, before, listChildren(t, ns))

	// The old endAt passes: nothing happens.
	clk.SetTime(end.Add(time.Second))
	time.Sleep(200 * time.Millisecond)
	if got := getMeeting(t, ns, "sync"); got.Status.Phase != rtcv1alpha1.PhaseRunning {
		t.Errorf("phase %s after the old endAt", got.Status.Phase)
	}

	// Restart the manager mid-meeting; while it is down a Service is lost.
	mgr.stop(t)
	var lost corev1.Service
	if err := shared.client.Get(ctx, types.NamespacedName{Namespace: ns, Name: "sync-sfu"}, &lost); err != nil {
		t.Fatal(err)
	}
	if err := shared.client.Delete(ctx, &lost); err != nil {
		t.Fatal(err)
	}
	startManager(t, ns, clk, cfg)
	eventually(t, "lost Service recreated", func() error {
		var s corev1.Service
		if err := shared.client.Get(ctx, types.NamespacedName{Namespace: ns, Name: "sync-sfu"}, &s); err != nil {
			return err
		}
		if s.UID == lost.UID {
			return fmt.Errorf("still the old Service")
		}
		return nil
	})
	after := listChildren(t, ns)
	if len(after.deployments) != 2 || len(after.services) != 2 || len(after.secrets) != 1 {
		t.Fatalf("after restart: %d deployments, %d services, %d secrets", len(after.deployments), len(after.services), len(after.secrets))
	}
	sameObjects(t, "deployment", before.deployments, after.deployments)
	sameObjects(t, "secret", before.secrets, after.secrets)
	if got := waitPhase(t, ns, "sync", rtcv1alpha1.PhaseRunning); got.Status.SignalURL == "" {
		t.Error("no signalURL after restart")
	}

	// Past the new endAt: Ending, media still up.
	clk.SetTime(newEnd)
	got = waitPhase(t, ns, "sync", rtcv1alpha1.PhaseEnding)
	if c := listChildren(t, ns); c.count() != 5 {
		t.Errorf("%d children while ending, want 5", c.count())
	}
	if got.Status.SignalURL == "" {
		t.Error("endpoints dropped during the grace period")
	}
	waitEvent(t, ns, "sync", "Ending")

	// Past endAt + grace: children gone, Ended, finalizer dropped.
	clk.SetTime(newEnd.Add(cfg.EndGrace))
	got = waitPhase(t, ns, "sync", rtcv1alpha1.PhaseEnded)
	eventually(t, "children removed", func() error {
		if c := listChildren(t, ns); c.count() != 0 {
			return fmt.Errorf("%d children left", c.count())
		}
		return nil
	})
	if got.Status.EndedAt == nil || !got.Status.EndedAt.Time.Equal(newEnd.Add(cfg.EndGrace)) {
		t.Errorf("endedAt %v", got.Status.EndedAt)
	}
	if got.Status.SignalURL != "" || len(got.Status.TURNURIs) != 0 {
		t.Errorf("endpoints left after the end: %q %v", got.Status.SignalURL, got.Status.TURNURIs)
	}
	if slices.Contains(got.Finalizers, rtcv1alpha1.MediaFinalizer) {
		t.Error("finalizer left after the end")
	}
	waitEvent(t, ns, "sync", "Ended")
}

// checkChildren checks what the operator created for a meeting.
func checkChildren(t *testing.T, m *rtcv1alpha1.Meeting, kids childSet, cfg controllers.Config) {
	t.Helper()
	owned := func(kind string, o metav1.Object) {
		if !metav1.IsControlledBy(o, m) {
			t.Errorf("%s %s is not controlled by the meeting: %+v", kind, o.GetName(), o.GetOwnerReferences())
		}
		l := o.GetLabels()
		if l[rtcv1alpha1.MeetingLabel] != m.Name || l["app.kubernetes.io/name"] != "meeting" ||
			l["app.kubernetes.io/instance"] != m.Name || l["app.kubernetes.io/managed-by"] == "" || l["app.kubernetes.io/component"] == "" {
			t.Errorf("%s %s labels %v", kind, o.GetName(), l)
		}
	}
	sec := kids.secrets[0]
	owned("Secret", &sec)
	if sec.Name != m.Name+"-media" {
		t.Errorf("secret name %s", sec.Name)
	}
	for _, k := range []string{"token-key", "turn-secret"} {
		raw, err := hex.DecodeString(string(sec.Data[k]))
		if err != nil || len(raw) != 32 {
			t.Errorf("secret key %s is not 32 hex-encoded bytes: %d bytes, %v", k, len(raw), err)
		}
	}
	if string(sec.Data["token-key"]) == string(sec.Data["turn-secret"]) {
		t.Error("token key and TURN secret are the same")
	}

	deps := map[string]appsv1.Deployment{}
	for _, d := range kids.deployments {
		owned("Deployment", &d)
		deps[d.Name] = d
	}
	sfu, ok := deps[m.Name+"-sfu"]
	if !ok {
		t.Fatalf("no SFU deployment among %v", keys(deps))
	}
	c := sfu.Spec.Template.Spec.Containers[0]
	if c.Image != cfg.Image || c.Args[0] != "sfu" {
		t.Errorf("SFU container image %s args %v", c.Image, c.Args)
	}
	for _, a := range []string{"--room=room-42", "--udp-port=7882", "--http-addr=:7880", "--max-participants=50"} {
		if !slices.Contains(c.Args, a) {
			t.Errorf("SFU args %v lack %s", c.Args, a)
		}
	}
	if len(c.Env) == 0 || c.Env[0].Name != "MEETING_TOKEN_KEY" || c.Env[0].ValueFrom.SecretKeyRef.Name != m.Name+"-media" ||
		c.Env[0].ValueFrom.SecretKeyRef.Key != "token-key" {
		t.Errorf("SFU env %+v", c.Env)
	}
	if p := c.ReadinessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/readyz" || p.HTTPGet.Port.IntValue() != 7880 {
		t.Errorf("SFU readiness probe %+v", p)
	}
	if *sfu.Spec.Replicas != 1 || sfu.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
		t.Errorf("SFU replicas %d strategy %s", *sfu.Spec.Replicas, sfu.Spec.Strategy.Type)
	}
	turn, ok := deps[m.Name+"-turn"]
	if !ok {
		t.Fatalf("no TURN deployment among %v", keys(deps))
	}
	c = turn.Spec.Template.Spec.Containers[0]
	if c.Image != cfg.Image || c.Args[0] != "turn" || !slices.Contains(c.Args, "--listen=:3478") {
		t.Errorf("TURN container image %s args %v", c.Image, c.Args)
	}
	env := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		env[e.Name] = e
	}
	if e := env["MEETING_TURN_SECRET"]; e.ValueFrom == nil || e.ValueFrom.SecretKeyRef.Key != "turn-secret" {
		t.Errorf("TURN secret env %+v", e)
	}
	if e := env["MEETING_RELAY_IP"]; e.ValueFrom == nil || e.ValueFrom.FieldRef.FieldPath != "status.podIP" {
		t.Errorf("TURN relay IP env %+v", e)
	}
	if p := c.ReadinessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/readyz" || p.HTTPGet.Port.IntValue() != 9641 {
		t.Errorf("TURN readiness probe %+v", p)
	}

	svcs := map[string]corev1.Service{}
	for _, s := range kids.services {
		owned("Service", &s)
		svcs[s.Name] = s
	}
	ports := func(s corev1.Service) []string {
		var out []string
		for _, p := range s.Spec.Ports {
			out = append(out, fmt.Sprintf("%d/%s", p.Port, p.Protocol))
		}
		return out
	}
	if got := ports(svcs[m.Name+"-sfu"]); !slices.Equal(got, []string{"7880/TCP", "7882/UDP"}) {
		t.Errorf("SFU service ports %v", got)
	}
	if got := ports(svcs[m.Name+"-turn"]); !slices.Equal(got, []string{"3478/UDP", "3478/TCP"}) {
		t.Errorf("TURN service ports %v", got)
	}
	if svcs[m.Name+"-sfu"].Spec.Type != corev1.ServiceTypeClusterIP {
		t.Errorf("service type %s", svcs[m.Name+"-sfu"].Spec.Type)
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// sameChildren checks that no child was replaced or written.
func sameChildren(t *testing.T, before, after childSet) {
	t.Helper()
	sameObjects(t, "deployment", before.deployments, after.deployments)
	sameObjects(t, "service", before.services, after.services)
	sameObjects(t, "secret", before.secrets, after.secrets)
}

func sameObjects[T any, P interface {
	*T
	metav1.Object
}](t *testing.T, kind string, before, after []T) {
	t.Helper()
	idx := map[string]metav1.Object{}
	for i := range before {
		o := P(&before[i])
		idx[o.GetName()] = o
	}
	if len(before) != len(after) {
		t.Errorf("%d %ss before, %d after", len(before), kind, len(after))
	}
	for i := range after {
		a := P(&after[i])
		b, ok := idx[a.GetName()]
		if !ok {
			t.Errorf("new %s %s", kind, a.GetName())
			continue
		}
		if a.GetUID() != b.GetUID() || a.GetResourceVersion() != b.GetResourceVersion() || a.GetGeneration() != b.GetGeneration() {
			t.Errorf("%s %s was replaced or written: uid %s→%s rv %s→%s gen %d→%d", kind, a.GetName(),
				b.GetUID(), a.GetUID(), b.GetResourceVersion(), a.GetResourceVersion(), b.GetGeneration(), a.GetGeneration())
		}
	}
}

// TestValidation: the API server itself rejects bad Meetings.
func TestValidation(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	for _, tt := range []struct {
		name string
		edit func(*rtcv1alpha1.Meeting)
		want string
	}{
		{"end before begin", func(m *rtcv1alpha1.Meeting) { m.Spec.EndAt = metav1.NewTime(t0) }, "endAt must be after beginAt"},
		{"end equals begin", func(m *rtcv1alpha1.Meeting) { m.Spec.EndAt = m.Spec.BeginAt }, "endAt must be after beginAt"},
		{"no title", func(m *rtcv1alpha1.Meeting) { m.Spec.Title = "" }, "spec.title"},
		{"too many participants", func(m *rtcv1alpha1.Meeting) { m.Spec.MaxParticipants = 1 }, "more participants than maxParticipants"},
		{"name too long for children", func(m *rtcv1alpha1.Meeting) { m.Name = strings.Repeat("a", 51) }, "at most 50 characters"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := newMeeting(ns, "bad", t0.Add(time.Hour), t0.Add(2*time.Hour))
			tt.edit(m)
			err := shared.client.Create(ctx, m)
			if !apierrors.IsInvalid(err) {
				t.Fatalf("create: %v, want Invalid", err)
			}
			if err := isInvalid(err, tt.want); err != nil {
				t.Fatal(err)
			}
		})
	}

	t.Run("identity immutable", func(t *testing.T) {
		m := newMeeting(ns, "fixed", t0.Add(time.Hour), t0.Add(2*time.Hour))
		m.Spec.Identity = "room-1"
		if err := shared.client.Create(ctx, m); err != nil {
			t.Fatal(err)
		}
		m.Spec.Identity = "room-2"
		if err := isInvalid(shared.client.Update(ctx, m), "identity is immutable"); err != nil {
			t.Fatal(err)
		}
		m = getMeeting(t, ns, "fixed")
		m.Spec.Identity = ""
		if err := isInvalid(shared.client.Update(ctx, m), "identity is immutable"); err != nil {
			t.Fatal(err)
		}
		m = getMeeting(t, ns, "fixed")
		m.Spec.EndAt = metav1.NewTime(t0.Add(3 * time.Hour))
		if err := shared.client.Update(ctx, m); err != nil {
			t.Fatalf("editing the times must stay allowed: %v", err)
		}
		if got := getMeeting(t, ns, "fixed"); got.Spec.MaxParticipants != 50 || !got.Spec.Media.TURNEnabled() {
			t.Errorf("defaults not applied: max %d turn %v", got.Spec.MaxParticipants, got.Spec.Media.TURN)
		}
	})
}

// TestDeletion: deleting a running Meeting removes its children.
func TestDeletion(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	clk := clocktesting.NewFakeClock(t0)
	startManager(t, ns, clk, testConfig())
	m := newMeeting(ns, "gone", t0, t0.Add(time.Hour))
	if err := shared.client.Create(ctx, m); err != nil {
		t.Fatal(err)
	}
	waitPhase(t, ns, "gone", rtcv1alpha1.PhaseStarting)
	eventually(t, "children", func() error {
		if c := listChildren(t, ns); c.count() != 5 {
			return fmt.Errorf("%d children", c.count())
		}
		return nil
	})
	if err := shared.client.Delete(ctx, m); err != nil {
		t.Fatal(err)
	}
	eventually(t, "meeting and children gone", func() error {
		if c := listChildren(t, ns); c.count() != 0 {
			return fmt.Errorf("%d children left", c.count())
		}
		err := shared.client.Get(ctx, client.ObjectKeyFromObject(m), &rtcv1alpha1.Meeting{})
		if !apierrors.IsNotFound(err) {
			return fmt.Errorf("meeting still there: %v", err)
		}
		return nil
	})
}

// TestNameConflict: a foreign object in the way fails the Meeting with a
// condition that says which, and the operator does not touch it.
func TestNameConflict(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	foreign := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "clash-sfu"},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80}}},
	}
	if err := shared.client.Create(ctx, foreign); err != nil {
		t.Fatal(err)
	}
	clk := clocktesting.NewFakeClock(t0)
	startManager(t, ns, clk, testConfig())
	m := newMeeting(ns, "clash", t0, t0.Add(time.Hour))
	if err := shared.client.Create(ctx, m); err != nil {
		t.Fatal(err)
	}
	got := waitPhase(t, ns, "clash", rtcv1alpha1.PhaseFailed)
	c := meta.FindStatusCondition(got.Status.Conditions, rtcv1alpha1.ConditionReady)
	if c == nil || c.Reason != controllers.ReasonNameConflict || !strings.Contains(c.Message, "clash-sfu") {
		t.Fatalf("Ready condition %+v, want NameConflict naming clash-sfu", c)
	}
	waitEvent(t, ns, "clash", "Failed")
	var s corev1.Service
	if err := shared.client.Get(ctx, client.ObjectKeyFromObject(foreign), &s); err != nil {
		t.Fatal(err)
	}
	if s.ResourceVersion != foreign.ResourceVersion || len(s.OwnerReferences) != 0 {
		t.Errorf("the foreign Service was modified")
	}
}

// TestTURNDisabled: a Meeting without TURN gets only the SFU, and is Running
// on the SFU alone.
func TestTURNDisabled(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	clk := clocktesting.NewFakeClock(t0)
	startManager(t, ns, clk, testConfig())
	m := newMeeting(ns, "direct", t0, t0.Add(time.Hour))
	off := false
	m.Spec.Media.TURN = &off
	if err := shared.client.Create(ctx, m); err != nil {
		t.Fatal(err)
	}
	waitPhase(t, ns, "direct", rtcv1alpha1.PhaseStarting)
	eventually(t, "SFU only", func() error {
		c := listChildren(t, ns)
		if len(c.deployments) != 1 || len(c.services) != 1 || len(c.secrets) != 1 || c.deployments[0].Name != "direct-sfu" {
			return fmt.Errorf("%d deployments %d services %d secrets", len(c.deployments), len(c.services), len(c.secrets))
		}
		return nil
	})
	markAvailable(t, ns, "direct-sfu")
	got := waitPhase(t, ns, "direct", rtcv1alpha1.PhaseRunning)
	if len(got.Status.TURNURIs) != 0 || got.Status.SignalURL == "" {
		t.Errorf("endpoints %q %v", got.Status.SignalURL, got.Status.TURNURIs)
	}
}
