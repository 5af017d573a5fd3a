package controllers_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/rand"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlconfig "sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	rtcv1alpha1 "meeting.dev/meeting/api/v1alpha1"
	"meeting.dev/meeting/controllers"
	"meeting.dev/meeting/internal/testenv"
)

// suite is the control plane every test in this package shares; each test
// works in its own namespace with its own manager and fake clock.
type suite struct {
	env    *testenv.Env
	scheme *runtime.Scheme
	client client.Client
}

func TestMain(m *testing.M) {
	os.Exit(runSuite(m))
}

// shared is set once by TestMain before any test runs and only read after.
var shared suite

func runSuite(m *testing.M) int {
	dir, err := os.MkdirTemp("", "meeting-envtest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	env, err := testenv.Start(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "controllers tests need a control plane:", err)
		return 1
	}
	defer func() {
		if err := env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}()
	scheme, err := controllers.NewScheme()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	c, err := client.New(env.Config, client.Options{Scheme: scheme})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	shared = suite{env: env, scheme: scheme, client: c}
	return m.Run()
}

// testConfig is the operator configuration the tests run with.
func testConfig() controllers.Config {
	cfg := controllers.DefaultConfig()
	cfg.Image = "meeting:test"
	cfg.LeadTime = time.Minute
	cfg.EndGrace = 2 * time.Minute
	return cfg
}

// newNamespace creates a namespace for one test.
func newNamespace(t *testing.T) string {
	t.Helper()
	ns := nsObject("t-" + rand.String(8))
	if err := shared.client.Create(context.Background(), ns); err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	t.Cleanup(func() { _ = shared.client.Delete(context.Background(), ns) })
	return ns.Name
}

// runningManager is a manager running the real Meeting controller.
type runningManager struct {
	metrics *prometheus.Registry
	cancel  context.CancelFunc
	done    chan error
	once    sync.Once
}

// startManager starts a manager for one namespace on the given clock.
func startManager(t *testing.T, ns string, clk *clocktesting.FakeClock, cfg controllers.Config) *runningManager {
	t.Helper()
	cacheOpts, err := controllers.CacheOptions(ns)
	if err != nil {
		t.Fatal(err)
	}
	skipNameCheck := true
	mgr, err := ctrl.NewManager(shared.env.Config, manager.Options{
		Scheme:                 shared.scheme,
		Cache:                  cacheOpts,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Logger:                 testLogger(t),
		Controller:             ctrlconfig.Controller{SkipNameValidation: &skipNameCheck},
	})
	if err != nil {
		t.Fatalf("new manager: %v", err)
	}
	reg := prometheus.NewRegistry()
	if err := controllers.Setup(mgr, cfg, clk, 2, reg); err != nil {
		t.Fatalf("setup: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	rm := &runningManager{metrics: reg, cancel: cancel, done: make(chan error, 1)}
	go func() { rm.done <- mgr.Start(ctx) }()
	t.Cleanup(func() { rm.stop(t) })
	return rm
}

func (rm *runningManager) stop(t *testing.T) {
	rm.once.Do(func() {
		rm.cancel()
		select {
		case err := <-rm.done:
			if err != nil {
				t.Errorf("manager: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("manager did not stop")
		}
	})
}

// eventually retries f until it returns nil, failing the test with its last
// error after a generous bound (the bound only guards against hangs).
func eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var err error
	for time.Now().Before(deadline) {
		if err = f(); err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s: %v", what, err)
}

func getMeeting(t *testing.T, ns, name string) *rtcv1alpha1.Meeting {
	t.Helper()
	var m rtcv1alpha1.Meeting
	if err := shared.client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &m); err != nil {
		t.Fatalf("get meeting: %v", err)
	}
	return &m
}

// waitPhase waits until the meeting's status reports phase for its current generation.
func waitPhase(t *testing.T, ns, name string, phase rtcv1alpha1.Phase) *rtcv1alpha1.Meeting {
	t.Helper()
	var m rtcv1alpha1.Meeting
	eventually(t, "phase "+string(phase), func() error {
		if err := shared.client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &m); err != nil {
			return err
		}
		if m.Status.Phase != phase || m.Status.ObservedGeneration != m.Generation {
			return fmt.Errorf("phase %q at generation %d/%d", m.Status.Phase, m.Status.ObservedGeneration, m.Generation)
		}
		return nil
	})
	return &m
}

// children lists what the operator created in a namespace.
type childSet struct {
	deployments []appsv1.Deployment
	services    []corev1.Service
	secrets     []corev1.Secret
}

func listChildren(t *testing.T, ns string) childSet {
	t.Helper()
	ctx := context.Background()
	sel := client.HasLabels{rtcv1alpha1.MeetingLabel}
	var d appsv1.DeploymentList
	var s corev1.ServiceList
	var sec corev1.SecretList
	for _, l := range []client.ObjectList{&d, &s, &sec} {
		if err := shared.client.List(ctx, l, client.InNamespace(ns), sel); err != nil {
			t.Fatalf("list children: %v", err)
		}
	}
	return childSet{deployments: d.Items, services: s.Items, secrets: sec.Items}
}

func (c childSet) count() int { return len(c.deployments) + len(c.services) + len(c.secrets) }

// markAvailable sets a Deployment's status as the deployment controller does
// once its pod is ready (envtest runs no controller-manager).
func markAvailable(t *testing.T, ns, name string) {
	t.Helper()
	eventually(t, "mark "+name+" available", func() error {
		var d appsv1.Deployment
		if err := shared.client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &d); err != nil {
			return err
		}
		now := metav1.Now()
		d.Status = appsv1.DeploymentStatus{
			ObservedGeneration: d.Generation,
			Replicas:           1, UpdatedReplicas: 1, ReadyReplicas: 1, AvailableReplicas: 1,
			Conditions: []appsv1.DeploymentCondition{
				{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue, Reason: "MinimumReplicasAvailable", LastUpdateTime: now, LastTransitionTime: now},
				{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionTrue, Reason: "NewReplicaSetAvailable", LastUpdateTime: now, LastTransitionTime: now},
			},
		}
		return shared.client.Status().Update(context.Background(), &d)
	})
}

// eventReasons returns the reasons of the Events recorded about a meeting.
func eventReasons(t *testing.T, ns, name string) []string {
	t.Helper()
	var l eventsv1.EventList
	if err := shared.client.List(context.Background(), &l, client.InNamespace(ns)); err != nil {
		t.Fatalf("list events: %v", err)
	}
	var out []string
	for _, e := range l.Items {
		if e.Regarding.Name == name && e.Regarding.Kind == "Meeting" {
			out = append(out, e.Reason)
		}
	}
	return out
}

func waitEvent(t *testing.T, ns, name, reason string) {
	t.Helper()
	eventually(t, "event "+reason, func() error {
		got := eventReasons(t, ns, name)
		for _, r := range got {
			if r == reason {
				return nil
			}
		}
		return fmt.Errorf("events %v have no %s", got, reason)
	})
}

func newMeeting(ns, name string, begin, end time.Time) *rtcv1alpha1.Meeting {
	return &rtcv1alpha1.Meeting{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: rtcv1alpha1.MeetingSpec{
			Title:        "Weekly sync",
			BeginAt:      metav1.NewTime(begin),
			EndAt:        metav1.NewTime(end),
			Creator:      "alice",
			Participants: []string{"bob", "carol"},
		},
	}
}

func isInvalid(err error, msg string) error {
	if err == nil {
		return errors.New("the API server accepted it")
	}
	if !strings.Contains(err.Error(), msg) {
		return fmt.Errorf("error %q does not say %q", err, msg)
	}
	return nil
}

func nsObject(name string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
}

// testLogger logs the manager through the test when MEETING_TEST_LOG is set.
func testLogger(t *testing.T) logr.Logger {
	if os.Getenv("MEETING_TEST_LOG") == "" {
		return logr.Discard()
	}
	return logr.FromSlogHandler(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).WithName(t.Name())
}

// metric returns the value of a counter, or the count and sum of a
// histogram, from the manager's registry (labels as name=value pairs).
func (rm *runningManager) metric(t *testing.T, name string, labels ...string) (count, sum float64) {
	t.Helper()
	families, err := rm.metrics.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, l := range m.GetLabel() {
					if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue next
				}
			}
			if h := m.GetHistogram(); h != nil {
				return float64(h.GetSampleCount()), h.GetSampleSum()
			}
			return m.GetCounter().GetValue(), 0
		}
	}
	return 0, 0
}
