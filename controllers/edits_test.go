package controllers_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"

	rtcv1alpha1 "meeting.dev/meeting/api/v1alpha1"
	"meeting.dev/meeting/controllers"
)

// TestPostpone: moving a running meeting's window into the future tears its
// media down and schedules it again.
func TestPostpone(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	clk := clocktesting.NewFakeClock(t0)
	startManager(t, ns, clk, testConfig())
	if err := shared.client.Create(ctx, newMeeting(ns, "later", t0, t0.Add(time.Hour))); err != nil {
		t.Fatal(err)
	}
	waitPhase(t, ns, "later", rtcv1alpha1.PhaseStarting)
	eventually(t, "children", func() error {
		if c := listChildren(t, ns); c.count() != 5 {
			return fmt.Errorf("%d children", c.count())
		}
		return nil
	})
	begin := t0.Add(24 * time.Hour)
	eventually(t, "postpone", func() error {
		m := getMeeting(t, ns, "later")
		m.Spec.BeginAt, m.Spec.EndAt = metav1.NewTime(begin), metav1.NewTime(begin.Add(time.Hour))
		return shared.client.Update(ctx, m)
	})
	got := waitPhase(t, ns, "later", rtcv1alpha1.PhaseScheduled)
	if c := listChildren(t, ns); c.count() != 0 {
		t.Errorf("%d children after postponing", c.count())
	}
	if slices.Contains(got.Finalizers, rtcv1alpha1.MediaFinalizer) {
		t.Error("finalizer kept while nothing runs")
	}
	// And it comes back when the new time comes.
	clk.SetTime(begin.Add(-time.Minute))
	waitPhase(t, ns, "later", rtcv1alpha1.PhaseStarting)
}

// TestProgressDeadline: a Deployment that cannot make progress (an image that
// does not pull, a pod that never gets ready) fails the Meeting with a
// condition that quotes the Deployment.
func TestProgressDeadline(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	startManager(t, ns, clocktesting.NewFakeClock(t0), testConfig())
	if err := shared.client.Create(ctx, newMeeting(ns, "stuck", t0, t0.Add(time.Hour))); err != nil {
		t.Fatal(err)
	}
	waitPhase(t, ns, "stuck", rtcv1alpha1.PhaseStarting)
	markAvailable(t, ns, "stuck-turn")
	eventually(t, "SFU deployment stuck", func() error {
		var d appsv1.Deployment
		if err := shared.client.Get(ctx, types.NamespacedName{Namespace: ns, Name: "stuck-sfu"}, &d); err != nil {
			return err
		}
		now := metav1.Now()
		d.Status = appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: 1, UnavailableReplicas: 1,
			Conditions: []appsv1.DeploymentCondition{{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionFalse,
				Reason: "ProgressDeadlineExceeded", Message: `ReplicaSet "stuck-sfu-1" has timed out progressing.`,
				LastUpdateTime: now, LastTransitionTime: now}}}
		return shared.client.Status().Update(ctx, &d)
	})
	got := waitPhase(t, ns, "stuck", rtcv1alpha1.PhaseFailed)
	c := meta.FindStatusCondition(got.Status.Conditions, rtcv1alpha1.ConditionReady)
	if c == nil || c.Reason != controllers.ReasonProgressDeadlineExceeded || !strings.Contains(c.Message, "timed out progressing") {
		t.Fatalf("Ready condition %+v", c)
	}
	if s := meta.FindStatusCondition(got.Status.Conditions, rtcv1alpha1.ConditionTURNAvailable); s == nil || s.Status != metav1.ConditionTrue {
		t.Errorf("TURN condition %+v", s)
	}
	waitEvent(t, ns, "stuck", "Failed")
	// It recovers when the Deployment does.
	markAvailable(t, ns, "stuck-sfu")
	waitPhase(t, ns, "stuck", rtcv1alpha1.PhaseRunning)
}

// TestNodePort: with NodePort Services the SFU listens for ICE on its
// allocated node port, and status names the public address and node ports.
func TestNodePort(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	cfg := testConfig()
	cfg.ServiceType, cfg.PublicAddress = corev1.ServiceTypeNodePort, "127.0.0.1"
	startManager(t, ns, clocktesting.NewFakeClock(t0), cfg)
	if err := shared.client.Create(ctx, newMeeting(ns, "np", t0, t0.Add(time.Hour))); err != nil {
		t.Fatal(err)
	}
	waitPhase(t, ns, "np", rtcv1alpha1.PhaseStarting)
	var svc corev1.Service
	eventually(t, "SFU service", func() error {
		return shared.client.Get(ctx, types.NamespacedName{Namespace: ns, Name: "np-sfu"}, &svc)
	})
	ports := map[string]int32{}
	for _, p := range svc.Spec.Ports {
		ports[p.Name] = p.NodePort
	}
	if svc.Spec.Type != corev1.ServiceTypeNodePort || ports["ice"] == 0 || ports["signal"] == 0 {
		t.Fatalf("service %s ports %v", svc.Spec.Type, ports)
	}
	var d appsv1.Deployment
	eventually(t, "SFU deployment", func() error {
		return shared.client.Get(ctx, types.NamespacedName{Namespace: ns, Name: "np-sfu"}, &d)
	})
	args := d.Spec.Template.Spec.Containers[0].Args
	if !slices.Contains(args, "--udp-port="+strconv.Itoa(int(ports["ice"]))) || !slices.Contains(args, "--public-ip=127.0.0.1") {
		t.Errorf("SFU args %v, want the ICE node port %d and the public address", args, ports["ice"])
	}
	markAvailable(t, ns, "np-sfu")
	markAvailable(t, ns, "np-turn")
	got := waitPhase(t, ns, "np", rtcv1alpha1.PhaseRunning)
	if want := fmt.Sprintf("ws://127.0.0.1:%d/ws", ports["signal"]); got.Status.SignalURL != want {
		t.Errorf("signalURL %q, want %q", got.Status.SignalURL, want)
	}
	if len(got.Status.TURNURIs) != 2 || !strings.HasPrefix(got.Status.TURNURIs[0], "turn:127.0.0.1:3") {
		t.Errorf("turnURIs %v", got.Status.TURNURIs)
	}
}

// TestCreatedLate: a Meeting created after its endAt brings no media up: it
// is Ending for what is left of the grace period, then Ended.
func TestCreatedLate(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	clk := clocktesting.NewFakeClock(t0)
	cfg := testConfig()
	startManager(t, ns, clk, cfg)
	end := t0.Add(-30 * time.Second)
	if err := shared.client.Create(ctx, newMeeting(ns, "late", t0.Add(-time.Hour), end)); err != nil {
		t.Fatal(err)
	}
	got := waitPhase(t, ns, "late", rtcv1alpha1.PhaseEnding)
	if c := meta.FindStatusCondition(got.Status.Conditions, rtcv1alpha1.ConditionReady); c == nil || c.Reason != controllers.ReasonNotStarted {
		t.Errorf("Ready condition %+v", c)
	}
	if c := listChildren(t, ns); c.count() != 0 {
		t.Errorf("%d children for a meeting that is over", c.count())
	}
	clk.SetTime(end.Add(cfg.EndGrace))
	waitPhase(t, ns, "late", rtcv1alpha1.PhaseEnded)
	if c := listChildren(t, ns); c.count() != 0 {
		t.Errorf("%d children after the end", c.count())
	}
}

// TestLoadBalancer: the SFU waits for its load balancer's address, announces
// it, and status names it.
func TestLoadBalancer(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	cfg := testConfig()
	cfg.ServiceType = corev1.ServiceTypeLoadBalancer
	startManager(t, ns, clocktesting.NewFakeClock(t0), cfg)
	if err := shared.client.Create(ctx, newMeeting(ns, "lb", t0, t0.Add(time.Hour))); err != nil {
		t.Fatal(err)
	}
	got := waitPhase(t, ns, "lb", rtcv1alpha1.PhaseStarting)
	eventually(t, "waiting for the address", func() error {
		got = getMeeting(t, ns, "lb")
		c := meta.FindStatusCondition(got.Status.Conditions, rtcv1alpha1.ConditionSFUAvailable)
		if c == nil || c.Reason != controllers.ReasonWaitingForAddress {
			return fmt.Errorf("SFU condition %+v", c)
		}
		return nil
	})
	var d appsv1.Deployment
	if err := shared.client.Get(ctx, types.NamespacedName{Namespace: ns, Name: "lb-sfu"}, &d); err == nil {
		t.Fatal("SFU deployment created before its address is known")
	}
	for name, ip := range map[string]string{"lb-sfu": "127.0.0.11", "lb-turn": "127.0.0.12"} {
		eventually(t, "load balancer address of "+name, func() error {
			var s corev1.Service
			if err := shared.client.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &s); err != nil {
				return err
			}
			s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: ip}}
			return shared.client.Status().Update(ctx, &s)
		})
	}
	eventually(t, "SFU deployment", func() error {
		return shared.client.Get(ctx, types.NamespacedName{Namespace: ns, Name: "lb-sfu"}, &d)
	})
	if args := d.Spec.Template.Spec.Containers[0].Args; !slices.Contains(args, "--public-ip=127.0.0.11") || !slices.Contains(args, "--udp-port=7882") {
		t.Errorf("SFU args %v", args)
	}
	markAvailable(t, ns, "lb-sfu")
	markAvailable(t, ns, "lb-turn")
	got = waitPhase(t, ns, "lb", rtcv1alpha1.PhaseRunning)
	if got.Status.SignalURL != "ws://127.0.0.11:7880/ws" || !slices.Equal(got.Status.TURNURIs,
		[]string{"turn:127.0.0.12:3478?transport=udp", "turn:127.0.0.12:3478?transport=tcp"}) {
		t.Errorf("endpoints %q %v", got.Status.SignalURL, got.Status.TURNURIs)
	}
}
