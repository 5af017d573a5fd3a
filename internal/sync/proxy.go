package sync

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rtcv1alpha1 "meeting.dev/meeting/api/v1alpha1"
)

// DefaultMaxProxyConns is ProxyConfig.MaxConns when zero.
const DefaultMaxProxyConns = 2000

// ProxyConfig configures the signalling proxy.
type ProxyConfig struct {
	// Namespace is where the API's Meetings live.
	Namespace string
	// Cache reads Meetings; it must have the IdentityIndex that Setup
	// registers (the manager's client).
	Cache client.Reader
	// SelfURL returns the scheme and host the client reached the API by
	// (trusting X-Forwarded-Proto/-Host only from trusted proxies): a
	// WebSocket whose Origin is that origin is accepted.
	SelfURL func(*http.Request) *url.URL
	// AllowedOrigins are further Origins accepted ("https://meet.example").
	AllowedOrigins []string
	// MaxConns caps the proxied connections open at once; one more is
	// answered 503 (DefaultMaxProxyConns when zero).
	MaxConns int
	// Transport reaches the SFUs (http.DefaultTransport's settings when nil).
	Transport http.RoundTripper
	// Registerer receives the proxy's metrics; nil leaves them unregistered.
	Registerer prometheus.Registerer
	// Log receives refusals and failures.
	Log *slog.Logger
}

// Proxy serves GET SignalPath(identity): it proxies the WebSocket to the
// signalling endpoint of the room's SFU as the operator reports it in the
// Meeting's status.signalURL (its Service in the cluster). The browser thus
// talks to the API's own origin only; the join token in the first message
// is checked by the SFU itself.
type Proxy struct {
	cfg     ProxyConfig
	origins map[string]bool
	slots   chan struct{}
	rp      *httputil.ReverseProxy
	base    context.Context
	open    prometheus.Gauge
	refused *prometheus.CounterVec
}

// proxyTarget carries the SFU's URL from ServeHTTP to the ReverseProxy's
// Rewrite.
type proxyTarget struct{}

// NewProxy returns the signalling proxy. Its connections are closed when
// ctx ends (they are hijacked, so http.Server.Shutdown does not see them).
func NewProxy(ctx context.Context, cfg ProxyConfig) (*Proxy, error) {
	var errs []error
	if cfg.Namespace == "" {
		errs = append(errs, errors.New("namespace is empty"))
	}
	if cfg.Cache == nil || cfg.SelfURL == nil || cfg.Log == nil {
		errs = append(errs, errors.New("cache, SelfURL and Log are required"))
	}
	if cfg.MaxConns < 0 {
		errs = append(errs, fmt.Errorf("max connections %d is negative", cfg.MaxConns))
	}
	origins := map[string]bool{}
	for _, o := range cfg.AllowedOrigins {
		n, err := normalOrigin(o)
		if err != nil {
			errs = append(errs, fmt.Errorf("allowed origin %q: %w", o, err))
			continue
		}
		origins[n] = true
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("signalling proxy: %w", err)
	}
	if cfg.MaxConns == 0 {
		cfg.MaxConns = DefaultMaxProxyConns
	}
	if cfg.Transport == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.Proxy = nil // an HTTP proxy of the environment must not see room traffic
		t.ResponseHeaderTimeout = 10 * time.Second
		// A WebSocket upgrade is HTTP/1.1 only, also to a wss:// SFU.
		t.ForceAttemptHTTP2 = false
		t.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
		cfg.Transport = t
	}
	p := &Proxy{cfg: cfg, origins: origins, slots: make(chan struct{}, cfg.MaxConns), base: ctx,
		open: prometheus.NewGauge(prometheus.GaugeOpts{Name: "meeting_api_signal_proxy_connections",
			Help: "Signalling WebSockets proxied to the rooms' SFUs now."}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "meeting_api_signal_proxy_refused_total",
			Help: "Signalling WebSockets the proxy refused, by reason."}, []string{"reason"}),
	}
	if cfg.Registerer != nil {
		for _, c := range []prometheus.Collector{p.open, p.refused} {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("signalling proxy metrics: %w", err)
			}
		}
	}
	p.rp = &httputil.ReverseProxy{
		Rewrite:   p.rewrite,
		Transport: cfg.Transport,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			cfg.Log.Warn("signalling proxy: the room's SFU did not answer", "path", r.URL.Path, "err", err)
			p.refused.WithLabelValues("upstream").Inc()
			http.Error(w, "the room's media server did not answer", http.StatusBadGateway)
		},
	}
	return p, nil
}

// ServeHTTP checks the request (a WebSocket upgrade, an accepted Origin, a
// room that runs) and proxies it.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	identity, ok := identityOfPath(r.URL.Path)
	switch {
	case !ok:
		p.refuse(w, "not_found", http.StatusNotFound, "no such room path", 0)
		return
	case r.Method != http.MethodGet || !strings.EqualFold(r.Header.Get("Upgrade"), "websocket"):
		p.refuse(w, "not_websocket", http.StatusBadRequest, "this endpoint takes a WebSocket upgrade only", 0)
		return
	case !p.originAllowed(r):
		p.cfg.Log.Info("signalling proxy: origin refused", "origin", r.Header.Get("Origin"), "room", identity)
		p.refuse(w, "origin", http.StatusForbidden, "origin not allowed", 0)
		return
	}
	m, err := findMeeting(r.Context(), p.cfg.Cache, p.cfg.Namespace, identity)
	if err != nil {
		p.cfg.Log.Error("signalling proxy: find the room", "room", identity, "err", err)
		p.refuse(w, "error", http.StatusServiceUnavailable, "the room cannot be looked up now", startingRetry)
		return
	}
	if m == nil {
		p.refuse(w, "not_found", http.StatusNotFound, "no such room", 0)
		return
	}
	target, err := sfuURL(m)
	if err != nil {
		p.refuse(w, "not_running", http.StatusServiceUnavailable, "the room's media is not running: "+err.Error(), startingRetry)
		return
	}
	select {
	case p.slots <- struct{}{}:
	default:
		p.cfg.Log.Warn("signalling proxy: connection cap reached", "max", p.cfg.MaxConns)
		p.refuse(w, "full", http.StatusServiceUnavailable, "too many signalling connections; try again shortly", startingRetry)
		return
	}
	defer func() { <-p.slots }()
	p.open.Inc()
	defer p.open.Dec()

	// The server's read and write deadlines would cut the hijacked
	// connection after its timeouts; the WebSocket lives as long as the
	// call (the SFU pings it).
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Time{})
	// Cancelled when the API shuts down: the ReverseProxy then closes the
	// SFU's side, and with it the client's.
	ctx, cancel := context.WithCancel(context.WithValue(r.Context(), proxyTarget{}, target))
	defer cancel()
	stop := context.AfterFunc(p.base, cancel)
	defer stop()
	p.rp.ServeHTTP(w, r.WithContext(ctx))
}

// rewrite points the request at the SFU: its signalling path, the client's
// query (a token there is the SFU's business), and an Origin of the SFU's
// own, which it accepts as same-origin. The client's Origin was checked here.
func (p *Proxy) rewrite(pr *httputil.ProxyRequest) {
	target := pr.In.Context().Value(proxyTarget{}).(*url.URL)
	out := pr.Out
	out.URL.Scheme, out.URL.Host, out.URL.Path, out.URL.RawPath = target.Scheme, target.Host, target.Path, ""
	out.URL.RawQuery = pr.In.URL.RawQuery
	out.Host = target.Host
	out.Header.Set("Origin", target.Scheme+"://"+target.Host)
	// Cookies and credentials of the API's origin are not the SFU's.
	out.Header.Del("Cookie")
	out.Header.Del("Authorization")
}

// refuse answers a refused request in plain text and counts it.
func (p *Proxy) refuse(w http.ResponseWriter, reason string, status int, msg string, retry time.Duration) {
	p.refused.WithLabelValues(reason).Inc()
	if retry > 0 {
		w.Header().Set("Retry-After", fmt.Sprint(int(retry.Seconds())))
	}
	http.Error(w, msg, status)
}

// originAllowed accepts the API's own origin and the allowed ones; a
// request without Origin is refused (every browser sends one on a
// WebSocket upgrade).
func (p *Proxy) originAllowed(r *http.Request) bool {
	o, err := normalOrigin(r.Header.Get("Origin"))
	if err != nil {
		return false
	}
	if p.origins[o] {
		return true
	}
	self := p.cfg.SelfURL(r)
	if self == nil {
		return false
	}
	s, err := normalOrigin(self.Scheme + "://" + self.Host)
	return err == nil && s == o
}

// normalOrigin is an http(s) origin in lower case with its default port
// left out.
func normalOrigin(o string) (string, error) {
	u, err := url.Parse(o)
	if err != nil {
		return "", err
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
		return "", errors.New("want scheme://host[:port]")
	}
	host := strings.ToLower(u.Host)
	if u.Scheme == "http" {
		host = strings.TrimSuffix(host, ":80")
	} else {
		host = strings.TrimSuffix(host, ":443")
	}
	return u.Scheme + "://" + host, nil
}

// sfuURL is the http(s) URL of the room's signalling endpoint, from the
// Meeting's status while its media runs (Running, or Ending in its grace).
func sfuURL(m *rtcv1alpha1.Meeting) (*url.URL, error) {
	if ph := m.Status.Phase; ph != rtcv1alpha1.PhaseRunning && ph != rtcv1alpha1.PhaseEnding {
		return nil, fmt.Errorf("phase %q", ph)
	}
	if m.Status.SignalURL == "" {
		return nil, errors.New("no signalling endpoint in its status yet")
	}
	u, err := url.Parse(m.Status.SignalURL)
	if err != nil {
		return nil, fmt.Errorf("status.signalURL: %w", err)
	}
	switch u.Scheme {
	case "ws":
		u.Scheme = "http"
	case "wss":
		u.Scheme = "https"
	default:
		return nil, fmt.Errorf("status.signalURL %q: want ws or wss", m.Status.SignalURL)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("status.signalURL %q has no host", m.Status.SignalURL)
	}
	return u, nil
}
