package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"meeting.dev/meeting/internal/sockbuf"
	"meeting.dev/meeting/media/turn"
)

// turnSecretEnv is the variable the operator sets from the room Secret's
// turn-secret key; MEETING_AUTH_SECRET (the flag's own variable) also works.
const turnSecretEnv = "MEETING_TURN_SECRET"

const turnUsage = `
The TURN REST API credentials (coturn's use-auth-secret): username
"<unix expiry>:<user>", password base64(HMAC-SHA1(auth-secret, username)).
Peers in loopback, private, CGNAT, link-local (cloud metadata), multicast and
reserved ranges are refused unless --allow-peer opens them (or
--allow-peer-addr, one exact IP:port of them). The secret may
also come from MEETING_TURN_SECRET. HTTP: /healthz, /readyz, /metrics.
`

// Defaults of the turn role's listeners.
const (
	defaultTURNListen    = ":3478"
	defaultTURNTLSListen = ":5349"
)

// turnFlags is the typed configuration of the turn role.
type turnFlags struct {
	cfg        turn.Config
	listen     string
	tlsListen  string
	udpSockets int
	udpBuffer  int
	tls        *tls.Config // from --tls-cert and --tls-key, set by config
	secret     string
	relayIP    string
	bindIP     string
	allow      prefixList
	allowTo    addrPortList
	httpAddr   string
	tlsCert    string
	tlsKey     string
	adapt      bool
	log        logFlags
}

func (f *turnFlags) register(fs *flag.FlagSet) {
	f.cfg = turn.DefaultConfig()
	fs.StringVar(&f.listen, "listen", defaultTURNListen, "host:port of the TURN UDP and TCP listeners")
	fs.StringVar(&f.cfg.Realm, "realm", f.cfg.Realm, "long-term credential realm")
	fs.StringVar(&f.secret, "auth-secret", "", "TURN REST API shared secret (required; or "+turnSecretEnv+")")
	fs.StringVar(&f.relayIP, "relay-ip", "", "IPv4 address given to clients as their relay address (required)")
	fs.StringVar(&f.bindIP, "relay-bind-ip", "", "IPv4 address relay sockets bind to (default all interfaces)")
	fs.IntVar(&f.cfg.RelayPortMin, "relay-port-min", f.cfg.RelayPortMin, "lowest relay port")
	fs.IntVar(&f.cfg.RelayPortMax, "relay-port-max", f.cfg.RelayPortMax, "highest relay port")
	fs.Var(&f.allow, "allow-peer", "CIDR or IP clients may relay to although the default policy denies it (repeatable, or comma-separated)")
	fs.Var(&f.allowTo, "allow-peer-addr", "IP:port clients may relay to although the default policy denies its IP; other ports stay denied (repeatable, or comma-separated)")
	fs.IntVar(&f.cfg.UserQuota, "user-quota", f.cfg.UserQuota, "most allocations per user, 0 for no limit")
	fs.IntVar(&f.cfg.TotalQuota, "total-quota", f.cfg.TotalQuota, "most allocations in total, 0 for no limit")
	fs.DurationVar(&f.cfg.TCPAuthTimeout, "tcp-auth-timeout", f.cfg.TCPAuthTimeout, "close a TCP or TLS connection that has sent no authenticated request this long after it opened")
	fs.DurationVar(&f.cfg.TCPIdleTimeout, "tcp-idle-timeout", f.cfg.TCPIdleTimeout, "close an authenticated TCP or TLS connection silent (or not reading) this long; its allocation ends with it")
	fs.IntVar(&f.cfg.TCPConnsPerSource, "tcp-conns-per-source", f.cfg.TCPConnsPerSource, "most TCP and TLS connections from one IP address, 0 for no limit")
	fs.IntVar(&f.udpSockets, "udp-sockets", 0, "UDP sockets sharing the port with SO_REUSEPORT (default one per CPU)")
	fs.IntVar(&f.udpBuffer, "udp-buffer", turn.DefaultUDPBuffer, "bytes of kernel receive and send buffer asked for each UDP socket (capped by net.core.rmem_max/wmem_max; logged when it is)")
	fs.StringVar(&f.httpAddr, "http-addr", ":9641", "host:port of /healthz, /readyz and /metrics")
	fs.StringVar(&f.tlsCert, "tls-cert", "", "PEM certificate for TURN over TLS (with --tls-key)")
	fs.StringVar(&f.tlsKey, "tls-key", "", "PEM private key for TURN over TLS")
	fs.StringVar(&f.tlsListen, "tls-listen", defaultTURNTLSListen, "host:port of the TLS listener, used with --tls-cert")
	fs.BoolVar(&f.adapt, "adaptive-procs", false, "run one Go P while relaying takes under ~0.7 core and all of them above: no CPU saved, more latency (docs/turn.md); ignored when GOMAXPROCS is set")
	f.log.register(fs, "json")
}

// config completes the server configuration but for its sockets, which
// openSockets opens, and checks the flags; turn.New validates the rest.
func (f *turnFlags) config() (turn.Config, error) {
	cfg := f.cfg
	secret := f.secret
	if secret == "" {
		secret = os.Getenv(turnSecretEnv)
	}
	cfg.Secret = []byte(secret)
	var errs []error
	if _, _, err := net.SplitHostPort(f.listen); err != nil {
		errs = append(errs, fmt.Errorf("--listen %q: %w", f.listen, err))
	}
	if f.udpBuffer < 0 {
		errs = append(errs, fmt.Errorf("--udp-buffer %d: must not be negative", f.udpBuffer))
	}
	if f.udpSockets < 0 {
		errs = append(errs, fmt.Errorf("--udp-sockets %d: want 0 (one per CPU) or more", f.udpSockets))
	}
	if f.relayIP != "" {
		ip, err := netip.ParseAddr(f.relayIP)
		if err != nil {
			errs = append(errs, fmt.Errorf("--relay-ip: %w", err))
		}
		cfg.RelayIP = ip
	}
	if f.bindIP != "" {
		ip, err := netip.ParseAddr(f.bindIP)
		if err != nil {
			errs = append(errs, fmt.Errorf("--relay-bind-ip: %w", err))
		}
		cfg.RelayBindIP = ip
	}
	cfg.AllowPeers = f.allow
	cfg.AllowPeerAddrs = f.allowTo
	// GOMAXPROCS set by hand wins over the adaptation.
	cfg.AdaptiveProcs = f.adapt && os.Getenv("GOMAXPROCS") == ""
	if (f.tlsCert == "") != (f.tlsKey == "") {
		errs = append(errs, errors.New("--tls-cert and --tls-key go together"))
	}
	if f.tlsCert != "" && f.tlsKey != "" {
		cert, err := tls.LoadX509KeyPair(f.tlsCert, f.tlsKey)
		if err != nil {
			errs = append(errs, fmt.Errorf("--tls-cert/--tls-key: %w", err))
		}
		f.tls = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		if _, _, err := net.SplitHostPort(f.tlsListen); err != nil {
			errs = append(errs, fmt.Errorf("--tls-listen %q: %w", f.tlsListen, err))
		}
	}
	if len(cfg.Secret) == 0 {
		errs = append(errs, fmt.Errorf("--auth-secret (or %s) is required", turnSecretEnv))
	}
	if !cfg.RelayIP.IsValid() && f.relayIP == "" {
		errs = append(errs, errors.New("--relay-ip is required"))
	}
	return cfg, errors.Join(errs...)
}

// openSockets opens the role's sockets: --udp-sockets UDP sockets on --listen
// (SO_REUSEPORT), TCP on the same port and, with a certificate, TLS on
// --tls-listen. On error it closes what it opened.
func (f *turnFlags) openSockets() ([]net.PacketConn, []net.Listener, error) {
	host, port, err := net.SplitHostPort(f.listen)
	if err != nil {
		return nil, nil, fmt.Errorf("--listen %q: %w", f.listen, err)
	}
	// With port 0 the first UDP socket picks the port; TCP may find it
	// taken, and then both are tried again on another.
	var udp []net.PacketConn
	var ls []net.Listener
	for attempt := 0; ; attempt++ {
		udp, err = turn.ListenUDP(net.JoinHostPort(host, port), f.udpSockets)
		if err != nil {
			return nil, nil, err
		}
		p := strconv.Itoa(udp[0].LocalAddr().(*net.UDPAddr).Port)
		tcp, err := net.Listen("tcp", net.JoinHostPort(host, p))
		if err == nil {
			ls = append(ls, tcp)
			break
		}
		closeAll(udp, nil)
		if port != "0" || attempt == 10 {
			return nil, nil, fmt.Errorf("open tcp listener: %w", err)
		}
	}
	if f.tls != nil {
		l, err := tls.Listen("tcp", f.tlsListen, f.tls)
		if err != nil {
			closeAll(udp, ls)
			return nil, nil, fmt.Errorf("open tls listener: %w", err)
		}
		ls = append(ls, l)
	}
	return udp, ls, nil
}

// closeAll closes sockets no server took over.
func closeAll(pcs []net.PacketConn, ls []net.Listener) {
	for _, c := range pcs {
		_ = c.Close()
	}
	for _, l := range ls {
		_ = l.Close()
	}
}

// prefixList is a repeatable flag of CIDR prefixes; a bare IP is one address.
type prefixList []netip.Prefix

func (p *prefixList) String() string {
	s := make([]string, len(*p))
	for i, x := range *p {
		s[i] = x.String()
	}
	return strings.Join(s, ",")
}

func (p *prefixList) Set(v string) error {
	for _, part := range strings.Split(v, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		if !strings.Contains(part, "/") {
			ip, err := netip.ParseAddr(part)
			if err != nil {
				return fmt.Errorf("%q is neither a CIDR nor an IP: %w", part, err)
			}
			*p = append(*p, netip.PrefixFrom(ip, ip.BitLen()))
			continue
		}
		pr, err := netip.ParsePrefix(part)
		if err != nil {
			return fmt.Errorf("%q: %w", part, err)
		}
		*p = append(*p, pr)
	}
	return nil
}

// addrPortList is a repeatable flag of IP:port addresses.
type addrPortList []netip.AddrPort

func (a *addrPortList) String() string {
	s := make([]string, len(*a))
	for i, x := range *a {
		s[i] = x.String()
	}
	return strings.Join(s, ",")
}

func (a *addrPortList) Set(v string) error {
	for _, part := range strings.Split(v, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		ap, err := netip.ParseAddrPort(part)
		if err != nil {
			return fmt.Errorf("%q: want IP:port: %w", part, err)
		}
		if ap.Port() == 0 {
			return fmt.Errorf("%q: want a port other than 0", part)
		}
		*a = append(*a, ap)
	}
	return nil
}

// runTURN runs the TURN relay of one room until ctx ends.
func runTURN(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var f turnFlags
	fs := newFlagSet("meeting turn", "TURN relay with ephemeral (use-auth-secret) credentials.", stdout, turnUsage)
	f.register(fs)
	log, err := parseRole(fs, args, &f.log, stderr)
	if err != nil {
		return err
	}
	cfg, err := f.config()
	if err != nil {
		return fmt.Errorf("turn: %w", err)
	}
	reg := newRegistry()
	cfg.Registerer = reg
	cfg.Logger = log

	cfg.PacketConns, cfg.Listeners, err = f.openSockets()
	if err != nil {
		return fmt.Errorf("turn: %w", err)
	}
	sockbuf.SetAndLog(log, "turn", f.udpBuffer, cfg.PacketConns...)
	srv, err := turn.New(cfg)
	if err != nil {
		closeAll(cfg.PacketConns, cfg.Listeners)
		return fmt.Errorf("turn: %w", err)
	}
	var ready atomic.Bool
	ready.Store(true)
	// On SIGTERM /readyz turns 503 first, then the relay closes.
	drain := func(context.Context) {
		ready.Store(false)
		log.Info("turn shutting down", "allocations", srv.Allocations())
	}
	err = serveHTTP(ctx, log, f.httpAddr, turnHTTP(reg, &ready), 5*time.Second, drain)
	if cerr := srv.Close(); cerr != nil {
		err = errors.Join(err, fmt.Errorf("turn: close: %w", cerr))
	}
	if err != nil {
		return fmt.Errorf("turn: %w", err)
	}
	return nil
}

// turnHTTP serves the health, readiness and metrics endpoints.
func turnHTTP(reg *prometheus.Registry, ready *atomic.Bool) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !ready.Load() {
			http.Error(w, "shutting down", http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ready\n")
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	return mux
}
