package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	rtcv1alpha1 "meeting.dev/meeting/api/v1alpha1"
	"meeting.dev/meeting/controllers"
	"meeting.dev/meeting/internal/schedule"
	"meeting.dev/meeting/internal/store"
	apisync "meeting.dev/meeting/internal/sync"
)

// serviceAccountNamespace is where a pod reads its own namespace.
const serviceAccountNamespace = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// syncConfig is the api role's configuration of the sync with the cluster
// (docs/sync.md) and of the signalling proxy (docs/network.md).
type syncConfig struct {
	enabled          bool
	kubeconfig       string
	namespace        string
	leaderElect      bool
	leaderElectionID string
	resyncPeriod     time.Duration
	allowedOrigins   []string
	maxSignalConns   int
	// namespaceFile is serviceAccountNamespace (a test changes it).
	namespaceFile string
}

func defaultSyncConfig() syncConfig {
	return syncConfig{enabled: true, leaderElect: true, leaderElectionID: "meeting-api-sync",
		resyncPeriod: 5 * time.Minute, maxSignalConns: apisync.DefaultMaxProxyConns, namespaceFile: serviceAccountNamespace}
}

func (c *syncConfig) register(fs *flag.FlagSet) {
	fs.BoolVar(&c.enabled, "sync", c.enabled, "sync meetings with the cluster's Meeting resources when a cluster configuration is found (--kubeconfig, in-cluster, then $KUBECONFIG); false runs on MySQL alone")
	fs.StringVar(&c.kubeconfig, "kubeconfig", c.kubeconfig, "kubeconfig file of the cluster to sync with (default: in-cluster configuration, then $KUBECONFIG)")
	fs.StringVar(&c.namespace, "namespace", c.namespace, "namespace of the API's Meetings (default: the pod's namespace, else default)")
	fs.BoolVar(&c.leaderElect, "leader-elect", c.leaderElect, "elect a leader among the replicas: only it runs the sync (every replica serves REST)")
	fs.StringVar(&c.leaderElectionID, "leader-election-id", c.leaderElectionID, "name of the leader election Lease, in --namespace")
	fs.DurationVar(&c.resyncPeriod, "resync-period", c.resyncPeriod, "how often the leader compares MySQL with the cluster (also at the start of leadership)")
	fs.Func("allowed-origins", "Origin the proxied signalling WebSocket (/rooms/ID/ws) accepts besides the API's own origin, e.g. https://meet.example.org (repeatable or comma-separated)", appendList(&c.allowedOrigins))
	fs.IntVar(&c.maxSignalConns, "max-signal-conns", c.maxSignalConns, "most signalling WebSockets proxied at once; one more is answered 503")
}

func (c *syncConfig) validate() error {
	var errs []error
	if c.namespace != "" {
		if msgs := validation.IsDNS1123Label(c.namespace); len(msgs) > 0 {
			errs = append(errs, fmt.Errorf("--namespace %q: %s", c.namespace, strings.Join(msgs, "; ")))
		}
	}
	if c.leaderElect && c.leaderElectionID == "" {
		errs = append(errs, errors.New("--leader-election-id is empty"))
	}
	if c.resyncPeriod < 10*time.Second {
		errs = append(errs, fmt.Errorf("--resync-period %s: want at least 10s", c.resyncPeriod))
	}
	if c.maxSignalConns < 1 {
		errs = append(errs, fmt.Errorf("--max-signal-conns %d: want at least 1", c.maxSignalConns))
	}
	for _, o := range c.allowedOrigins {
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
			errs = append(errs, fmt.Errorf("--allowed-origins %q: want scheme://host[:port]", o))
		}
	}
	return errors.Join(errs...)
}

// restConfig finds the cluster to sync with: --kubeconfig when given, else
// the in-cluster configuration, else $KUBECONFIG. source says which; nil
// and a reason when none is found or --sync=false (never ~/.kube/config: a
// developer's default cluster is not synced by accident).
func (c *syncConfig) restConfig() (cfg *rest.Config, source string, err error) {
	switch {
	case !c.enabled:
		return nil, "--sync=false", nil
	case c.kubeconfig != "":
		cfg, err = clientcmd.BuildConfigFromFlags("", c.kubeconfig)
		source = "--kubeconfig " + c.kubeconfig
	default:
		cfg, err = rest.InClusterConfig()
		source = "in-cluster"
		if errors.Is(err, rest.ErrNotInCluster) {
			env := os.Getenv(clientcmd.RecommendedConfigPathEnvVar)
			if env == "" {
				return nil, "no cluster configuration (not in a cluster, no --kubeconfig, no $KUBECONFIG)", nil
			}
			cfg, err = clientcmd.NewNonInteractiveDeferredLoadingClientConfig(
				&clientcmd.ClientConfigLoadingRules{ExplicitPath: env}, &clientcmd.ConfigOverrides{}).ClientConfig()
			source = "$KUBECONFIG " + env
		}
	}
	if err != nil {
		return nil, "", fmt.Errorf("kubernetes client config (%s): %w", source, err)
	}
	cfg.QPS, cfg.Burst = 50, 100
	cfg.UserAgent = "meeting-api"
	return cfg, source, nil
}

// resolveNamespace is --namespace, else the pod's namespace, else default.
func (c *syncConfig) resolveNamespace() string {
	if c.namespace != "" {
		return c.namespace
	}
	if b, err := os.ReadFile(c.namespaceFile); err == nil {
		if ns := strings.TrimSpace(string(b)); ns != "" {
			return ns
		}
	}
	return "default"
}

// clusterSync is the api role's part in a cluster: the manager running the
// sync, the Rooms that read the cluster, and the signalling proxy.
type clusterSync struct {
	mgr   manager.Manager
	rooms *apisync.Rooms
	proxy *apisync.Proxy
}

// setupClusterSync builds the controller manager of the sync: cache and
// leader election in the namespace, the sync's runnables, the Rooms and the
// proxy. It returns nil when the api role runs on MySQL alone.
func setupClusterSync(ctx context.Context, c syncConfig, st *store.Store, policy schedule.Policy, selfURL func(*http.Request) *url.URL,
	reg prometheus.Registerer, log *slog.Logger) (*clusterSync, error) {
	restCfg, source, err := c.restConfig()
	if err != nil {
		return nil, err
	}
	if restCfg == nil {
		log.Info("running on MySQL alone: no sync with a cluster", "reason", source)
		return nil, nil
	}
	ns := c.resolveNamespace()
	lr := logr.FromSlogHandler(log.Handler())
	// controller-runtime and client-go log through these process-wide hooks.
	ctrl.SetLogger(lr)
	klog.SetLogger(lr)
	scheme, err := controllers.NewScheme()
	if err != nil {
		return nil, err
	}
	mgr, err := ctrl.NewManager(restCfg, manager.Options{
		Scheme: scheme,
		Logger: lr,
		// Only the namespace's objects, managed fields kept (the sync's
		// lag metric reads them). Secrets are read uncached: the Role
		// allows get only.
		Cache:                         cache.Options{DefaultNamespaces: map[string]cache.Config{ns: {}}},
		Metrics:                       metricsserver.Options{BindAddress: "0"}, // the API serves /metrics
		HealthProbeBindAddress:        "0",                                     // and /healthz, /readyz
		LeaderElection:                c.leaderElect,
		LeaderElectionID:              c.leaderElectionID,
		LeaderElectionNamespace:       ns,
		LeaderElectionReleaseOnCancel: true,
		GracefulShutdownTimeout:       ptr(10 * time.Second),
	})
	if err != nil {
		return nil, fmt.Errorf("controller manager: %w", err)
	}
	if _, err := apisync.Setup(mgr, apisync.Config{Namespace: ns, Store: st, ResyncPeriod: c.resyncPeriod, Registerer: reg}); err != nil {
		return nil, err
	}
	// Every replica reads Meetings (Rooms, the proxy), leader or not: start
	// their informer with the cache so that /readyz waits for it.
	if _, err := mgr.GetCache().GetInformer(ctx, &rtcv1alpha1.Meeting{}, cache.BlockUntilSynced(false)); err != nil {
		return nil, fmt.Errorf("meeting informer: %w", err)
	}
	rooms, err := apisync.NewRooms(apisync.RoomsConfig{Namespace: ns, Cache: mgr.GetClient(), Secrets: mgr.GetAPIReader(), Policy: policy})
	if err != nil {
		return nil, err
	}
	proxy, err := apisync.NewProxy(ctx, apisync.ProxyConfig{Namespace: ns, Cache: mgr.GetClient(), SelfURL: selfURL,
		AllowedOrigins: c.allowedOrigins, MaxConns: c.maxSignalConns, Registerer: reg, Log: log})
	if err != nil {
		return nil, err
	}
	log.Info("syncing with the cluster", "config", source, "host", restCfg.Host, "namespace", ns,
		"leaderElect", c.leaderElect, "leaderElectionID", c.leaderElectionID, "resyncPeriod", c.resyncPeriod)
	return &clusterSync{mgr: mgr, rooms: rooms, proxy: proxy}, nil
}

// ready fails until the manager's cache has synced.
func (s *clusterSync) ready(ctx context.Context) error {
	if !s.mgr.GetCache().WaitForCacheSync(ctx) {
		return errors.New("the cluster cache has not synced yet")
	}
	return nil
}

// handlers are the routes the sync adds to the API.
func (s *clusterSync) handlers() map[string]http.Handler {
	return map[string]http.Handler{apisync.SignalPathPrefix + ":identity/ws": s.proxy}
}

func ptr[T any](v T) *T { return &v }

// serveWithSync serves the API and runs the sync's manager beside it until
// ctx ends (SIGTERM) or either fails: HTTP drains, the manager stops (its
// runnables end, the leader Lease is released) and both are waited for.
func serveWithSync(ctx context.Context, cfg apiConfig, log *slog.Logger, h http.Handler, s *clusterSync) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	mgrDone := make(chan error, 1)
	go func() {
		err := s.mgr.Start(ctx)
		cancel() // a failed manager stops the API too
		mgrDone <- err
	}()
	httpErr := serveHTTP(ctx, log, cfg.httpAddr, h, cfg.shutdownGrace, nil)
	cancel()
	mgrErr := <-mgrDone
	if mgrErr != nil {
		mgrErr = fmt.Errorf("sync manager: %w", mgrErr)
	} else {
		log.Info("sync stopped")
	}
	return errors.Join(httpErr, mgrErr)
}
