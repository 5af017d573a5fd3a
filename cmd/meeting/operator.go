package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"meeting.dev/meeting/controllers"
)

// operatorConfig is the configuration of `meeting operator`.
type operatorConfig struct {
	controllers.Config

	kubeconfig        string
	namespace         string
	workers           int
	qps               float64
	burst             int
	leaderElect       bool
	leaderElectionNS  string
	leaderElectionID  string
	metricsAddr       string
	healthAddr        string
	imagePullPolicy   string
	serviceType       string
	sfuCPU, sfuMemory resource.QuantityValue
	turnCPU, turnMem  resource.QuantityValue
}

// The operator's own endpoints by default: loopback only.
const (
	defaultOperatorMetricsAddr = "127.0.0.1:8081"
	defaultOperatorHealthAddr  = "127.0.0.1:8082"
)

func defaultOperatorConfig() operatorConfig {
	c := operatorConfig{
		Config:           controllers.DefaultConfig(),
		workers:          4,
		qps:              50,
		burst:            100,
		leaderElectionID: "meeting-operator.rtc.meeting.dev",
		// Loopback, and ports apart from standalone's 8080: a Deployment
		// passes --metrics-addr=:8080 --health-addr=:8081 for its probes.
		metricsAddr: defaultOperatorMetricsAddr,
		healthAddr:  defaultOperatorHealthAddr,
	}
	// The media pods run the image of this very binary's version.
	c.Image = defaultImage()
	c.imagePullPolicy = string(c.ImagePullPolicy)
	c.serviceType = string(c.ServiceType)
	c.sfuCPU.Quantity, c.sfuMemory.Quantity = c.SFUResources.CPU, c.SFUResources.Memory
	c.turnCPU.Quantity, c.turnMem.Quantity = c.TURNResources.CPU, c.TURNResources.Memory
	return c
}

func (c *operatorConfig) register(fs *flag.FlagSet) {
	fs.StringVar(&c.kubeconfig, "kubeconfig", c.kubeconfig, "kubeconfig file for running outside the cluster (default: in-cluster, then $KUBECONFIG, then ~/.kube/config)")
	fs.StringVar(&c.namespace, "namespace", c.namespace, "watch only this namespace (default: every namespace)")
	fs.DurationVar(&c.LeadTime, "lead-time", c.LeadTime, "bring a room's media up this long before beginAt")
	fs.DurationVar(&c.EndGrace, "end-grace", c.EndGrace, "keep a room's media up this long after endAt")
	fs.StringVar(&c.Image, "image", c.Image, "image of the media pods; its entrypoint is the meeting binary")
	fs.StringVar(&c.imagePullPolicy, "image-pull-policy", c.imagePullPolicy, "pull policy of the media pods: Always, IfNotPresent or Never")
	fs.StringVar(&c.serviceType, "service-type", c.serviceType, "type of the SFU and TURN Services: ClusterIP, NodePort or LoadBalancer")
	fs.StringVar(&c.PublicAddress, "public-address", c.PublicAddress, "address clients reach the nodes on (required for NodePort; the SFU announces it when it is an IP)")
	fs.StringVar(&c.TURNPublicIP, "turn-public-ip", c.TURNPublicIP, "address of TURN relay candidates (default: each TURN pod's IP)")
	fs.Func("sfu-allowed-origins", "Origin the SFUs accept on their signalling WebSocket, e.g. the web client's https://meet.example.org; \"*\" for any (repeatable or comma-separated; default same-origin only)", appendList(&c.SFUAllowedOrigins))
	fs.Func("turn-allow-peer", "CIDR or IP the TURN servers may relay to although private (repeatable or comma-separated): the pod network, so relayed clients reach the SFU pods", appendList(&c.TURNAllowPeers))
	fs.Var(&c.sfuCPU, "sfu-cpu", "CPU request of an SFU container")
	fs.Var(&c.sfuMemory, "sfu-memory", "memory request and limit of an SFU container")
	fs.Var(&c.turnCPU, "turn-cpu", "CPU request of a TURN container")
	fs.Var(&c.turnMem, "turn-memory", "memory request and limit of a TURN container")
	fs.IntVar(&c.workers, "workers", c.workers, "Meetings reconciled at once")
	fs.Float64Var(&c.qps, "kube-api-qps", c.qps, "steady requests per second to the API server")
	fs.IntVar(&c.burst, "kube-api-burst", c.burst, "burst of requests to the API server")
	fs.BoolVar(&c.leaderElect, "leader-elect", c.leaderElect, "elect a leader so that only one replica acts")
	fs.StringVar(&c.leaderElectionNS, "leader-election-namespace", c.leaderElectionNS, "namespace of the leader election Lease (default: the pod's namespace)")
	fs.StringVar(&c.leaderElectionID, "leader-election-id", c.leaderElectionID, "name of the leader election Lease")
	fs.StringVar(&c.metricsAddr, "metrics-addr", c.metricsAddr, "address of the Prometheus /metrics endpoint (0 disables it); loopback by default, :8080 in the Deployment")
	fs.StringVar(&c.healthAddr, "health-addr", c.healthAddr, "address of the /healthz and /readyz probes (0 disables them); loopback by default, :8081 in the Deployment so that the kubelet reaches it")
}

// finish copies the flag-only fields into the controller config and validates.
func (c *operatorConfig) finish() error {
	c.ImagePullPolicy = corev1.PullPolicy(c.imagePullPolicy)
	c.ServiceType = corev1.ServiceType(c.serviceType)
	c.SFUResources = controllers.Resources{CPU: c.sfuCPU.Quantity, Memory: c.sfuMemory.Quantity}
	c.TURNResources = controllers.Resources{CPU: c.turnCPU.Quantity, Memory: c.turnMem.Quantity}
	return c.Validate()
}

// Validate reports every problem with the configuration.
func (c *operatorConfig) Validate() error {
	var errs []error
	if err := c.Config.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.workers < 1 {
		errs = append(errs, fmt.Errorf("--workers %d: want at least 1", c.workers))
	}
	if c.qps <= 0 || c.burst < 1 {
		errs = append(errs, fmt.Errorf("--kube-api-qps %g and --kube-api-burst %d must be positive", c.qps, c.burst))
	}
	if c.leaderElect && c.leaderElectionID == "" {
		errs = append(errs, errors.New("--leader-election-id is empty"))
	}
	return errors.Join(errs...)
}

func (c *operatorConfig) restConfig() (*rest.Config, error) {
	var (
		cfg *rest.Config
		err error
	)
	if c.kubeconfig != "" {
		cfg, err = clientcmd.BuildConfigFromFlags("", c.kubeconfig)
	} else {
		cfg, err = ctrl.GetConfig()
	}
	if err != nil {
		return nil, fmt.Errorf("kubernetes client config: %w", err)
	}
	cfg.QPS, cfg.Burst = float32(c.qps), c.burst
	cfg.UserAgent = "meeting-operator"
	return cfg, nil
}

// runOperator runs the controller manager that schedules each Meeting's media.
func runOperator(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg := defaultOperatorConfig()
	var lf logFlags
	fs := newFlagSet("meeting operator",
		"Runs the Kubernetes operator: for each Meeting it brings up an SFU and a TURN server\n"+
			"(Deployments, Services and a Secret) before beginAt and removes them after endAt.", stdout, "")
	cfg.register(fs)
	lf.register(fs, "json")
	logger, err := parseRole(fs, args, &lf, stderr)
	if err != nil {
		return err
	}
	if err := cfg.finish(); err != nil {
		return fmt.Errorf("operator config: %w", err)
	}
	log := logr.FromSlogHandler(logger.Handler())
	// controller-runtime and client-go log through these process-wide hooks.
	ctrl.SetLogger(log)
	klog.SetLogger(log)

	restCfg, err := cfg.restConfig()
	if err != nil {
		return err
	}
	scheme, err := controllers.NewScheme()
	if err != nil {
		return err
	}
	var namespaces []string
	if cfg.namespace != "" {
		namespaces = []string{cfg.namespace}
	}
	cacheOpts, err := controllers.CacheOptions(namespaces...)
	if err != nil {
		return err
	}
	mgr, err := ctrl.NewManager(restCfg, manager.Options{
		Scheme:                        scheme,
		Logger:                        log,
		Cache:                         cacheOpts,
		Metrics:                       metricsserver.Options{BindAddress: cfg.metricsAddr},
		HealthProbeBindAddress:        cfg.healthAddr,
		LeaderElection:                cfg.leaderElect,
		LeaderElectionID:              cfg.leaderElectionID,
		LeaderElectionNamespace:       cfg.leaderElectionNS,
		LeaderElectionReleaseOnCancel: true,
	})
	if err != nil {
		return fmt.Errorf("controller manager: %w", err)
	}
	if err := controllers.Setup(mgr, cfg.Config, clock.RealClock{}, cfg.workers, ctrlmetrics.Registry); err != nil {
		return err
	}
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return fmt.Errorf("health check: %w", err)
	}
	if err := mgr.AddReadyzCheck("cache", func(req *http.Request) error {
		if !mgr.GetCache().WaitForCacheSync(req.Context()) {
			return errors.New("cache not synced")
		}
		return nil
	}); err != nil {
		return fmt.Errorf("ready check: %w", err)
	}
	logger.Info("operator starting", "leadTime", cfg.LeadTime, "endGrace", cfg.EndGrace, "image", cfg.Image,
		"serviceType", cfg.ServiceType, "namespace", cfg.namespace, "leaderElect", cfg.leaderElect)
	if err := mgr.Start(ctx); err != nil {
		return fmt.Errorf("operator: %w", err)
	}
	logger.Info("operator stopped")
	return nil
}
