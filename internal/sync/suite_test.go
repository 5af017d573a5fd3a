package sync_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"slices"
	gosync "sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlconfig "sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	rtcv1alpha1 "meeting.dev/meeting/api/v1alpha1"
	"meeting.dev/meeting/controllers"
	"meeting.dev/meeting/internal/meeting"
	"meeting.dev/meeting/internal/store"
	"meeting.dev/meeting/internal/store/storetest"
	apisync "meeting.dev/meeting/internal/sync"
	"meeting.dev/meeting/internal/testenv"
)

// suite is the control plane every test of the package shares; each test
// has its own namespace and database.
type suite struct {
	env    *testenv.Env
	scheme *runtime.Scheme
	client client.Client
}

// shared is set once by TestMain before any test runs and only read after.
var shared suite

func TestMain(m *testing.M) { os.Exit(runSuite(m)) }

func runSuite(m *testing.M) int {
	// controller-runtime's process-wide logger; managers get their own.
	ctrl.SetLogger(logr.Discard())
	gin.SetMode(gin.ReleaseMode) // the REST API of the Rooms tests, without its route listing
	dir, err := os.MkdirTemp("", "meeting-sync-envtest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	env, err := testenv.Start(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "sync tests need a control plane:", err)
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

var bg = context.Background()

// world is one test's namespace, database and users.
type world struct {
	ns                string
	dbURL             string
	st                *store.Store
	alice, bob, carol meeting.Account
}

func newWorld(t *testing.T) *world {
	t.Helper()
	ns := "t-" + randHex(4)
	if err := shared.client.Create(bg, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	w := &world{ns: ns, dbURL: storetest.NewDatabaseURL(t)}
	w.st = openStore(t, w.dbURL)
	for _, u := range []*meeting.Account{&w.alice, &w.bob, &w.carol} {
		name := map[*meeting.Account]string{&w.alice: "alice", &w.bob: "bob", &w.carol: "carol"}[u]
		a, err := w.st.CreateUser(bg, name, "$2a$10$"+randHex(26))
		if err != nil {
			t.Fatal(err)
		}
		*u = a
	}
	return w
}

// openStore opens a store on the database with the outbox enabled, as
// `meeting api` does when it syncs.
func openStore(t *testing.T, dbURL string) *store.Store {
	t.Helper()
	st, err := store.Open(bg, dbURL, "", nil)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	st.EnableOutbox()
	return st
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// restCreate creates a meeting as REST does: row and outbox entry.
func (w *world) restCreate(t *testing.T, title string, begin time.Time, participants ...uint64) meeting.Meeting {
	t.Helper()
	m := meeting.Meeting{Identity: "r-" + randHex(8), Name: title, BeginAt: begin.UTC().Truncate(time.Millisecond),
		EndAt: begin.Add(time.Hour).UTC().Truncate(time.Millisecond), CreatorID: w.alice.ID, MaxParticipants: 50}
	if err := w.st.CreateMeeting(bg, &m, participants); err != nil {
		t.Fatalf("create meeting: %v", err)
	}
	return m
}

func (w *world) restRename(t *testing.T, identity, title string) {
	t.Helper()
	if _, err := w.st.UpdateMeeting(bg, identity, func(m *meeting.Meeting) error { m.Name = title; return nil }); err != nil {
		t.Fatalf("rename %s: %v", identity, err)
	}
}

// running is a manager running the sync.
type running struct {
	mgr     manager.Manager
	syncer  *apisync.Syncer
	metrics *prometheus.Registry
	cancel  context.CancelFunc
	done    chan error
	once    gosync.Once
}

type syncOpts struct {
	leaderElection bool
	operator       bool
	resync         time.Duration
	// wrap, when set, wraps the manager's transport (to cut the API server off).
	wrap func(http.RoundTripper) http.RoundTripper
}

// startSync starts a manager for the world's namespace running the sync
// (and the operator when asked).
func startSync(t *testing.T, w *world, st *store.Store, o syncOpts) *running {
	t.Helper()
	skip := true
	opts := manager.Options{
		Scheme:                 shared.scheme,
		Cache:                  cache.Options{DefaultNamespaces: map[string]cache.Config{w.ns: {}}},
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Logger:                 testLogger(t),
		Controller:             ctrlconfig.Controller{SkipNameValidation: &skip},
	}
	if o.leaderElection {
		lease, renew, retry := 3*time.Second, 2*time.Second, 200*time.Millisecond
		opts.LeaderElection = true
		opts.LeaderElectionID = "meeting-api-sync"
		opts.LeaderElectionNamespace = w.ns
		opts.LeaderElectionReleaseOnCancel = true
		opts.LeaseDuration, opts.RenewDeadline, opts.RetryPeriod = &lease, &renew, &retry
	}
	cfg := rest.CopyConfig(shared.env.Config)
	if o.wrap != nil {
		cfg.Wrap(o.wrap)
	}
	mgr, err := ctrl.NewManager(cfg, opts)
	if err != nil {
		t.Fatalf("new manager: %v", err)
	}
	reg := prometheus.NewRegistry()
	s, err := apisync.Setup(mgr, apisync.Config{
		Namespace: w.ns, Store: st, Registerer: reg, ResyncPeriod: o.resync,
		PollInterval: 100 * time.Millisecond, MaxBackoff: time.Second,
	})
	if err != nil {
		t.Fatalf("sync setup: %v", err)
	}
	if o.operator {
		oc := controllers.DefaultConfig()
		oc.Image = "meeting:test"
		if err := controllers.Setup(mgr, oc, clock.RealClock{}, 1, nil); err != nil {
			t.Fatalf("operator setup: %v", err)
		}
	}
	ctx, cancel := context.WithCancel(bg)
	r := &running{mgr: mgr, syncer: s, metrics: reg, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- mgr.Start(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

func (r *running) stop(t *testing.T) {
	t.Helper()
	r.once.Do(func() {
		r.cancel()
		select {
		case err := <-r.done:
			if err != nil {
				t.Errorf("manager: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("manager did not stop")
		}
	})
}

// counter returns a counter's value from the sync's registry.
func (r *running) counter(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	families, err := r.metrics.Gather()
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
				ok := false
				for _, l := range m.GetLabel() {
					ok = ok || l.GetName() == labels[i] && l.GetValue() == labels[i+1]
				}
				if !ok {
					continue next
				}
			}
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			if g := m.GetGauge(); g != nil {
				return g.GetValue()
			}
			if h := m.GetHistogram(); h != nil {
				return float64(h.GetSampleCount())
			}
		}
	}
	return 0
}

// eventually retries f until it returns nil; the bound only guards hangs.
func eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	var err error
	for time.Now().Before(deadline) {
		if err = f(); err == nil {
			return
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Fatalf("%s: %v", what, err)
}

func getMeeting(ns, name string) (*rtcv1alpha1.Meeting, error) {
	var m rtcv1alpha1.Meeting
	if err := shared.client.Get(bg, client.ObjectKey{Namespace: ns, Name: name}, &m); err != nil {
		return nil, err
	}
	return &m, nil
}

// gone says whether the Meeting no longer exists.
func gone(ns, name string) error {
	m, err := getMeeting(ns, name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	return fmt.Errorf("Meeting %s still exists (deleting: %v, finalizers %v)", name, m.DeletionTimestamp != nil, m.Finalizers)
}

// specIs checks the fields the API owns.
func specIs(m *rtcv1alpha1.Meeting, title string, begin time.Time, creator string, participants ...string) error {
	s := m.Spec
	switch {
	case s.Title != title:
		return fmt.Errorf("title %q, want %q", s.Title, title)
	case s.BeginAt.Unix() != begin.Unix():
		return fmt.Errorf("beginAt %s, want %s", s.BeginAt.UTC(), begin.UTC())
	case s.EndAt.Unix() != begin.Add(time.Hour).Unix():
		return fmt.Errorf("endAt %s, want %s", s.EndAt.UTC(), begin.Add(time.Hour).UTC())
	case s.Creator != creator:
		return fmt.Errorf("creator %q, want %q", s.Creator, creator)
	case !slices.Equal(s.Participants, participants) && !(len(s.Participants) == 0 && len(participants) == 0):
		return fmt.Errorf("participants %v, want %v", s.Participants, participants)
	case s.MaxParticipants != 50:
		return fmt.Errorf("maxParticipants %d, want 50", s.MaxParticipants)
	}
	return nil
}

// rowIs checks a row's title and participants (nil: no row).
func rowIs(st *store.Store, identity, title string, participants ...string) error {
	sm, err := st.SyncMeeting(bg, identity)
	if err != nil {
		return err
	}
	if sm.Meeting.Name != title {
		return fmt.Errorf("row %s: title %q, want %q", identity, sm.Meeting.Name, title)
	}
	if !slices.Equal(sm.Participants, participants) && !(len(sm.Participants) == 0 && len(participants) == 0) {
		return fmt.Errorf("row %s: participants %v, want %v", identity, sm.Participants, participants)
	}
	return nil
}

func noRow(st *store.Store, identity string) error {
	_, err := st.SyncMeeting(bg, identity)
	if err == nil {
		return fmt.Errorf("row %s still exists", identity)
	}
	if !apierrors.IsNotFound(err) && !isNotFound(err) {
		return err
	}
	return nil
}

func isNotFound(err error) bool { return err != nil && errors.Is(err, store.ErrNotFound) }

// eventReasons returns the reasons of the Events about a Meeting.
func eventReasons(t *testing.T, ns, name string) []string {
	t.Helper()
	var l eventsv1.EventList
	if err := shared.client.List(bg, &l, client.InNamespace(ns)); err != nil {
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

func hasEvent(t *testing.T, ns, name, reason string) error {
	got := eventReasons(t, ns, name)
	if slices.Contains(got, reason) {
		return nil
	}
	return fmt.Errorf("events %v of %s have no %s", got, name, reason)
}

// kubeMeeting is a Meeting as a user would write it for kubectl.
func kubeMeeting(ns, name, creator string, begin time.Time, participants ...string) *rtcv1alpha1.Meeting {
	return &rtcv1alpha1.Meeting{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: rtcv1alpha1.MeetingSpec{
			Title: "kubectl " + name, BeginAt: metav1.NewTime(begin), EndAt: metav1.NewTime(begin.Add(time.Hour)),
			Creator: creator, Participants: participants,
		},
	}
}

// testLogger logs managers through stderr when MEETING_TEST_LOG is set.
func testLogger(t *testing.T) logr.Logger {
	if os.Getenv("MEETING_TEST_LOG") == "" {
		return logr.Discard()
	}
	return logr.FromSlogHandler(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).WithName(t.Name())
}

// cutOff fails every write to the API server while down is true, as an
// unreachable API server would; reads (the cache) keep working.
type cutOff struct {
	next http.RoundTripper
	down *atomic.Bool
}

func (c cutOff) RoundTrip(req *http.Request) (*http.Response, error) {
	if c.down.Load() && req.Method != http.MethodGet {
		return nil, errors.New("dial tcp 127.0.0.1: connect: connection refused (cut off by the test)")
	}
	return c.next.RoundTrip(req)
}
