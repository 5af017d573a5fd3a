package sync

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	rtcv1alpha1 "meeting.dev/meeting/api/v1alpha1"
	"meeting.dev/meeting/internal/store"
)

// Config configures the sync.
type Config struct {
	// Namespace is where the API's Meetings live.
	Namespace string
	// Store is the API's database; Setup enables its outbox and sets its
	// after-commit callback to the Syncer's Notify.
	Store *store.Store
	// ResyncPeriod is how often the resync runs besides at the start of
	// leadership (default 5m).
	ResyncPeriod time.Duration
	// PollInterval is how often the worker looks for outbox entries written
	// by other replicas (default 500ms).
	PollInterval time.Duration
	// MaxBackoff caps the wait before retrying a failed apply (default 10s;
	// the first retry waits 250ms, each later one twice as long).
	MaxBackoff time.Duration
	// Registerer receives the sync's metrics; nil leaves them unregistered.
	Registerer prometheus.Registerer
	// Now is the clock (default time.Now).
	Now func() time.Time
}

func (c *Config) defaults() error {
	var errs []error
	if c.Namespace == "" {
		errs = append(errs, errors.New("namespace is empty"))
	}
	if c.Store == nil {
		errs = append(errs, errors.New("store is nil"))
	}
	if c.ResyncPeriod < 0 || c.PollInterval < 0 || c.MaxBackoff < 0 {
		errs = append(errs, fmt.Errorf("resync period %s, poll interval %s and max backoff %s must not be negative",
			c.ResyncPeriod, c.PollInterval, c.MaxBackoff))
	}
	if c.ResyncPeriod == 0 {
		c.ResyncPeriod = 5 * time.Minute
	}
	if c.PollInterval == 0 {
		c.PollInterval = 500 * time.Millisecond
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = 10 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return errors.Join(errs...)
}

// Syncer is the running sync of one API process.
type Syncer struct {
	cfg      Config
	client   client.Client
	reader   client.Reader // uncached
	recorder events.EventRecorder
	metrics  *metrics
	wake     chan struct{}
}

// Notify wakes the outbox worker at once; it never blocks. The store calls
// it after a transaction that recorded an outbox entry has committed.
func (s *Syncer) Notify() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Setup registers on mgr the IdentityIndex, the Meeting watcher (a
// controller), the outbox worker and the periodic resync; watcher, worker
// and resync run only on the elected leader. mgr's cache should be limited
// to cfg.Namespace and its scheme must hold the Meeting API. Setup enables
// the store's outbox and points its callback at the returned Syncer's
// Notify.
func Setup(mgr ctrl.Manager, cfg Config) (*Syncer, error) {
	if err := cfg.defaults(); err != nil {
		return nil, fmt.Errorf("sync config: %w", err)
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	s := &Syncer{
		cfg:      cfg,
		client:   client.WithFieldOwner(mgr.GetClient(), FieldManager),
		reader:   mgr.GetAPIReader(),
		recorder: mgr.GetEventRecorder(FieldManager),
		metrics:  m,
		wake:     make(chan struct{}, 1),
	}
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &rtcv1alpha1.Meeting{}, IdentityIndex,
		func(o client.Object) []string {
			m, ok := o.(*rtcv1alpha1.Meeting)
			if !ok {
				return nil
			}
			return []string{strings.ToLower(m.RoomIdentity())}
		}); err != nil {
		return nil, fmt.Errorf("sync: index Meetings by identity: %w", err)
	}
	inNamespace := predicate.NewPredicateFuncs(func(o client.Object) bool { return o.GetNamespace() == cfg.Namespace })
	if err := ctrl.NewControllerManagedBy(mgr).
		Named("meeting-api-sync").
		For(&rtcv1alpha1.Meeting{}, builder.WithPredicates(inNamespace)).
		Complete(&watcher{s}); err != nil {
		return nil, fmt.Errorf("sync: meeting watcher: %w", err)
	}
	if err := mgr.Add(leaderOnly(s.runWorker)); err != nil {
		return nil, fmt.Errorf("sync: outbox worker: %w", err)
	}
	if err := mgr.Add(leaderOnly(func(ctx context.Context) error { return s.runResync(ctx, mgr) })); err != nil {
		return nil, fmt.Errorf("sync: resync: %w", err)
	}
	cfg.Store.EnableOutbox()
	cfg.Store.OnOutbox(s.Notify)
	return s, nil
}

// leaderOnly is a runnable that runs only on the elected leader.
type leaderOnly func(ctx context.Context) error

func (f leaderOnly) Start(ctx context.Context) error { return f(ctx) }

// NeedLeaderElection says it runs on the leader only.
func (leaderOnly) NeedLeaderElection() bool { return true }

var _ manager.LeaderElectionRunnable = leaderOnly(nil)
