package turn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	pionturn "github.com/pion/turn/v2"
	"github.com/prometheus/client_golang/prometheus"

	"meeting.dev/meeting/media/internal/pionlog"
	"meeting.dev/meeting/media/internal/udploop"
)

// Defaults of Config.
const (
	DefaultRealm        = "meeting"
	DefaultRelayPortMin = 49152
	DefaultRelayPortMax = 65535
	DefaultUserQuota    = 10
	DefaultTotalQuota   = 2000
	// DefaultTCPAuthTimeout is how long a TCP or TLS connection may stay
	// without sending an authenticated request.
	DefaultTCPAuthTimeout = 5 * time.Second
	// DefaultTCPIdleTimeout is how long a TCP or TLS connection may stay
	// silent once authenticated: the default allocation lifetime (RFC 5766),
	// twice a permission's; a client that relays refreshes its permissions
	// at least every 5 minutes.
	DefaultTCPIdleTimeout = 10 * time.Minute
	// DefaultTCPConnsPerSource is the most TCP and TLS connections one
	// source IP address may hold.
	DefaultTCPConnsPerSource = 20
	// DefaultUDPBuffer is the kernel buffer, each way, asked for each
	// client-facing UDP socket: 2 MiB, as coturn asks, which Linux doubles
	// to 4 MiB of accounted memory, about 5,000 datagrams of 100 bytes. It
	// is sized by the wait it allows: under overload the buffer stays full
	// and what it holds waits its turn, on the 2-core test machine about
	// 400 ms at 12,500 datagrams a second a socket. Twice as much doubled
	// that wait (docs/turn.md, Performance). The SFU's sockets ask for more
	// (sockbuf.Default): they take full-size video in bursts.
	DefaultUDPBuffer = 2 << 20
)

// Config configures a Server. Secret, RelayIP and at least one socket (in
// PacketConns or Listeners) have no default.
type Config struct {
	// PacketConns are the client-facing UDP sockets, for example those
	// ListenUDP opens. On Linux each *net.UDPConn is served by an event loop
	// of its own (media/internal/udploop), which takes it out of Go's
	// poller; any other PacketConn is served as it is.
	PacketConns []net.PacketConn
	// Listeners are the client-facing TCP listeners; a TURN-over-TLS
	// (turns:) listener is given already wrapped by tls.NewListener.
	//
	// The Server owns the sockets of PacketConns and Listeners once New has
	// succeeded: Close closes them (as pion's Server does). When New fails
	// the caller closes them (closing one New had already taken and closed
	// is harmless).
	Listeners []net.Listener
	// Realm is the long-term credential realm.
	Realm string
	// Secret is the TURN REST API shared secret (coturn's static-auth-secret).
	Secret []byte
	// RelayIP is the address of relay candidates, given to clients (IPv4).
	RelayIP netip.Addr
	// RelayBindIP is where relay sockets are bound; unset binds all interfaces.
	RelayBindIP netip.Addr
	// RelayPortMin and RelayPortMax bound the relay ports (inclusive).
	RelayPortMin, RelayPortMax int
	// AllowPeers opens ranges the peer policy denies by default.
	AllowPeers []netip.Prefix
	// AllowPeerAddrs opens exact peer addresses, IP and port, that the peer
	// policy denies by default (standalone: the SFU's own ICE address on
	// loopback); other ports of their IPs stay denied.
	AllowPeerAddrs []netip.AddrPort
	// UserQuota is the most allocations one user may hold (0: unlimited);
	// the user is the part of the username after "<expiry>:".
	UserQuota int
	// TotalQuota is the most allocations the server holds (0: unlimited).
	TotalQuota int
	// TCPAuthTimeout closes a connection of Listeners that has not sent an
	// authenticated request (one whose MESSAGE-INTEGRITY the server checked)
	// this long after it was accepted, or whose client leaves a write
	// unread that long before it has; 0 is DefaultTCPAuthTimeout.
	TCPAuthTimeout time.Duration
	// TCPIdleTimeout closes an authenticated connection of Listeners that
	// has sent nothing for this long, or whose client has read nothing for
	// this long while the server had something to send; 0 is
	// DefaultTCPIdleTimeout. The connection's allocation ends with it.
	TCPIdleTimeout time.Duration
	// TCPConnsPerSource is the most connections of Listeners one source IP
	// address may hold (0: unlimited); one over it is closed at once.
	TCPConnsPerSource int
	// AdaptiveProcs, when set, runs DefaultProcs while the server runs. It
	// changes GOMAXPROCS of the whole process, so only a process whose main
	// job is relaying (meeting turn) sets it, and only for one Server;
	// embedders leave it unset.
	AdaptiveProcs bool
	// Logger receives the server's logs; nil discards them.
	Logger *slog.Logger
	// Registerer receives the metrics; nil registers nowhere. Servers given
	// the same Registerer share its series, which count for all of them.
	Registerer prometheus.Registerer
	// Now is the clock credentials are checked against; nil is time.Now.
	Now func() time.Time
}

// DefaultConfig returns a Config with every default set; Secret, RelayIP and
// the sockets remain to be given.
func DefaultConfig() Config {
	return Config{
		Realm:        DefaultRealm,
		RelayPortMin: DefaultRelayPortMin,
		RelayPortMax: DefaultRelayPortMax,
		UserQuota:    DefaultUserQuota,
		TotalQuota:   DefaultTotalQuota,

		TCPAuthTimeout:    DefaultTCPAuthTimeout,
		TCPIdleTimeout:    DefaultTCPIdleTimeout,
		TCPConnsPerSource: DefaultTCPConnsPerSource,
	}
}

// Validate reports the first thing wrong with c.
func (c *Config) Validate() error {
	var errs []error
	if len(c.PacketConns) == 0 && len(c.Listeners) == 0 {
		errs = append(errs, errors.New("no sockets: give PacketConns, Listeners or both"))
	}
	for i, pc := range c.PacketConns {
		if pc == nil {
			errs = append(errs, fmt.Errorf("packet conn %d is nil", i))
		}
	}
	for i, l := range c.Listeners {
		if l == nil {
			errs = append(errs, fmt.Errorf("listener %d is nil", i))
		}
	}
	if c.Realm == "" {
		errs = append(errs, errors.New("realm is empty"))
	}
	if len(c.Secret) == 0 {
		errs = append(errs, errors.New("auth secret is empty"))
	}
	if !c.RelayIP.IsValid() || !c.RelayIP.Unmap().Is4() || c.RelayIP.IsUnspecified() {
		errs = append(errs, fmt.Errorf("relay IP %q: want a specific IPv4 address", c.RelayIP))
	}
	if c.RelayBindIP.IsValid() && !c.RelayBindIP.Unmap().Is4() {
		errs = append(errs, fmt.Errorf("relay bind IP %q: want an IPv4 address", c.RelayBindIP))
	}
	if c.RelayPortMin < 1 || c.RelayPortMax > 65535 || c.RelayPortMin > c.RelayPortMax {
		errs = append(errs, fmt.Errorf("relay ports %d-%d: want 1 <= min <= max <= 65535", c.RelayPortMin, c.RelayPortMax))
	}
	for _, a := range c.AllowPeerAddrs {
		if !a.IsValid() || a.Port() == 0 {
			errs = append(errs, fmt.Errorf("allowed peer address %q: want IP:port with a port", a))
		}
	}
	if c.UserQuota < 0 || c.TotalQuota < 0 {
		errs = append(errs, errors.New("quotas must not be negative"))
	}
	if c.TCPAuthTimeout < 0 || c.TCPIdleTimeout < 0 {
		errs = append(errs, fmt.Errorf("TCP timeouts %v and %v: must not be negative", c.TCPAuthTimeout, c.TCPIdleTimeout))
	}
	if c.TCPConnsPerSource < 0 {
		errs = append(errs, fmt.Errorf("TCP connections per source %d: must not be negative", c.TCPConnsPerSource))
	}
	return errors.Join(errs...)
}

// Server is a running TURN server.
type Server struct {
	turn      *pionturn.Server
	udp       []net.PacketConn // as given
	listeners []net.Listener   // as given
	quotas    *quotas
	streams   *streams    // connections of the listeners
	chans     []*channels // one per UDP socket
	loops     []*udploop.Loop
	log       *slog.Logger
	stopProcs context.CancelFunc // nil without AdaptiveProcs
	procsDone chan struct{}
	closing   sync.Once
	err       error
}

// New validates cfg and serves TURN on its sockets until Close.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("turn config: %w", err)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Registerer == nil {
		cfg.Registerer = prometheus.NewRegistry()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.TCPAuthTimeout == 0 {
		cfg.TCPAuthTimeout = DefaultTCPAuthTimeout
	}
	if cfg.TCPIdleTimeout == 0 {
		cfg.TCPIdleTimeout = DefaultTCPIdleTimeout
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	s := &Server{
		udp:       slices.Clone(cfg.PacketConns),
		listeners: slices.Clone(cfg.Listeners),
		quotas:    newQuotas(cfg.UserQuota, cfg.TotalQuota, cfg.Now),
		log:       cfg.Logger,
	}
	auth := &authenticator{secret: cfg.Secret, realm: cfg.Realm, now: cfg.Now, metrics: m}
	policy := NewPeerPolicy(cfg.AllowPeers, cfg.AllowPeerAddrs...)
	g := &guard{auth: auth, quotas: s.quotas, policy: policy, metrics: m, log: cfg.Logger}
	bind := "0.0.0.0"
	if cfg.RelayBindIP.IsValid() {
		bind = cfg.RelayBindIP.Unmap().String()
	}
	// One event loop per UDP socket (at least one, for the relay sockets of
	// TCP clients); relay sockets are spread over them.
	for range max(len(s.udp), 1) {
		l, err := udploop.New()
		if err != nil {
			s.closeLoops()
			return nil, fmt.Errorf("turn: %w", err)
		}
		s.loops = append(s.loops, l)
	}
	gen := &relays{
		loops: &loops{all: s.loops},
		next: &pionturn.RelayAddressGeneratorPortRange{
			RelayAddress: net.IP(cfg.RelayIP.Unmap().AsSlice()),
			Address:      bind,
			MinPort:      uint16(cfg.RelayPortMin),
			MaxPort:      uint16(cfg.RelayPortMax),
			MaxRetries:   50,
		},
		policy: policy, quotas: s.quotas, metrics: m, now: cfg.Now,
	}
	permit := func(client net.Addr, peer net.IP) bool {
		if policy.allowedIP(peer) {
			return true
		}
		m.permissionDenials.Inc()
		return false
	}

	sc := pionturn.ServerConfig{
		Realm:         cfg.Realm,
		AuthHandler:   auth.handle,
		LoggerFactory: pionlog.New(cfg.Logger),
	}
	if err := gen.Validate(); err != nil {
		s.closeLoops()
		return nil, fmt.Errorf("turn: %w", err)
	}
	var served []udploop.Conn
	fail := func(err error) (*Server, error) {
		for _, c := range served {
			_ = c.Close()
		}
		s.closeLoops()
		return nil, err
	}
	for i, u := range s.udp {
		ch := newChannels(s.quotas, cfg.Now)
		c, err := s.loops[i].Adopt(u, ch.handle)
		if err != nil {
			return fail(fmt.Errorf("turn: %w", err))
		}
		served = append(served, c)
		ch.sock = c
		s.chans = append(s.chans, ch)
		sc.PacketConnConfigs = append(sc.PacketConnConfigs, pionturn.PacketConnConfig{
			PacketConn:            &packetConn{Conn: c, guard: g, channels: ch, log: cfg.Logger},
			RelayAddressGenerator: gen,
			PermissionHandler:     permit,
		})
	}
	s.streams = newStreams(cfg.TCPAuthTimeout, cfg.TCPIdleTimeout, cfg.TCPConnsPerSource, s.quotas, m, cfg.Logger)
	for _, l := range s.listeners {
		sc.ListenerConfigs = append(sc.ListenerConfigs, pionturn.ListenerConfig{
			Listener:              &listener{Listener: l, guard: g, streams: s.streams},
			RelayAddressGenerator: gen,
			PermissionHandler:     permit,
		})
	}
	s.turn, err = pionturn.NewServer(sc)
	if err != nil {
		return fail(fmt.Errorf("start turn server: %w", err))
	}
	if cfg.AdaptiveProcs {
		ctx, cancel := context.WithCancel(context.Background())
		s.stopProcs, s.procsDone = cancel, make(chan struct{})
		go func() {
			defer close(s.procsDone)
			DefaultProcs(cfg.Logger).Run(ctx)
		}()
	}
	s.log.Info("turn serving", "udp", addrString(s.UDPAddr()), "udp_sockets", len(s.udp), "tcp", listenerAddrs(s.listeners),
		"relay_ip", cfg.RelayIP.String(), "relay_ports", fmt.Sprintf("%d-%d", cfg.RelayPortMin, cfg.RelayPortMax),
		"allow_peers", fmt.Sprint(cfg.AllowPeers), "allow_peer_addrs", fmt.Sprint(cfg.AllowPeerAddrs), "user_quota", cfg.UserQuota, "total_quota", cfg.TotalQuota,
		"tcp_auth_timeout", cfg.TCPAuthTimeout.String(), "tcp_idle_timeout", cfg.TCPIdleTimeout.String(), "tcp_conns_per_source", cfg.TCPConnsPerSource,
		"adaptive_procs", cfg.AdaptiveProcs)
	return s, nil
}

// UDPAddr is the address of the first of Config.PacketConns, or nil
// without them (all the sockets ListenUDP opens share it).
func (s *Server) UDPAddr() net.Addr {
	if len(s.udp) == 0 {
		return nil
	}
	return s.udp[0].LocalAddr()
}

// TCPAddr is the address of the first of Config.Listeners (TCP, or TLS when
// the caller gave a TLS listener first), or nil without them.
func (s *Server) TCPAddr() net.Addr {
	if len(s.listeners) == 0 {
		return nil
	}
	return s.listeners[0].Addr()
}

func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}

func listenerAddrs(ls []net.Listener) string {
	addrs := make([]string, len(ls))
	for i, l := range ls {
		addrs[i] = l.Addr().String()
	}
	return strings.Join(addrs, ",")
}

func (s *Server) closeLoops() {
	for _, l := range s.loops {
		_ = l.Close()
	}
}

// closeWait bounds how long Close waits for pion to close its allocations.
const closeWait = 2 * time.Second

// awaitAllocationsClosed waits, up to closeWait, until pion has closed every
// allocation and relay socket. pion closes them in goroutines of its own
// once its sockets are closed, after its Close has returned; closing the
// loops meanwhile closed relay sockets under it, and it logged "Failed to
// close allocation" and gave up on the rest.
func (s *Server) awaitAllocationsClosed() {
	deadline := time.Now().Add(closeWait)
	for s.turn.AllocationCount() > 0 || s.quotas.openRelays() > 0 {
		if time.Now().After(deadline) {
			s.log.Warn("turn allocations still open at shutdown; closing their sockets",
				"allocations", s.turn.AllocationCount(), "relay_sockets", s.quotas.openRelays())
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// Allocations is the number of allocations pion holds now.
func (s *Server) Allocations() int { return s.turn.AllocationCount() }

// Close closes the sockets of Config.PacketConns and Config.Listeners, the
// client connections accepted on the listeners and every allocation, and
// stops adapting GOMAXPROCS.
func (s *Server) Close() error {
	s.closing.Do(func() {
		if err := s.turn.Close(); err != nil {
			s.err = fmt.Errorf("close turn server: %w", err)
		}
		s.streams.close() // pion leaves accepted connections open
		s.awaitAllocationsClosed()
		s.closeLoops()
		if s.stopProcs != nil {
			s.stopProcs()
			<-s.procsDone
		}
	})
	return s.err
}
