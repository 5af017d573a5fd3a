package turn

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"strconv"
	"sync"
	"time"

	pionturn "github.com/pion/turn/v2"
	"github.com/prometheus/client_golang/prometheus"

	"meeting.dev/meeting/media/internal/pionlog"
	"meeting.dev/meeting/media/internal/rawudp"
)

// Defaults of Config.
const (
	DefaultListen       = ":3478"
	DefaultRealm        = "meeting"
	DefaultRelayPortMin = 49152
	DefaultRelayPortMax = 65535
	DefaultUserQuota    = 10
	DefaultTotalQuota   = 2000
)

// Config configures a Server. Secret and RelayIP have no default.
type Config struct {
	// Listen is the host:port of the UDP and TCP listeners; port 0 picks one.
	Listen string
	// TLSListen is the host:port of the TLS listener, used when TLS is set.
	TLSListen string
	// TLS, when set, serves TURN over TLS on TLSListen.
	TLS *tls.Config
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
	// UserQuota is the most allocations one user may hold (0: unlimited);
	// the user is the part of the username after "<expiry>:".
	UserQuota int
	// TotalQuota is the most allocations the server holds (0: unlimited).
	TotalQuota int
	// UDPSockets is how many SO_REUSEPORT sockets share the UDP port;
	// 0 means one per CPU.
	UDPSockets int
	// Logger receives the server's logs; nil discards them.
	Logger *slog.Logger
	// Registerer receives the metrics; nil registers nowhere.
	Registerer prometheus.Registerer
	// Now is the clock credentials are checked against; nil is time.Now.
	Now func() time.Time
}

// DefaultConfig returns a Config with every default set; Secret and RelayIP
// remain to be given.
func DefaultConfig() Config {
	return Config{
		Listen:       DefaultListen,
		TLSListen:    ":5349",
		Realm:        DefaultRealm,
		RelayPortMin: DefaultRelayPortMin,
		RelayPortMax: DefaultRelayPortMax,
		UserQuota:    DefaultUserQuota,
		TotalQuota:   DefaultTotalQuota,
	}
}

// Validate reports the first thing wrong with c.
func (c *Config) Validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		errs = append(errs, fmt.Errorf("listen address %q: %w", c.Listen, err))
	}
	if c.TLS != nil {
		if _, _, err := net.SplitHostPort(c.TLSListen); err != nil {
			errs = append(errs, fmt.Errorf("TLS listen address %q: %w", c.TLSListen, err))
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
	if c.UserQuota < 0 || c.TotalQuota < 0 || c.UDPSockets < 0 {
		errs = append(errs, errors.New("quotas and socket count must not be negative"))
	}
	return errors.Join(errs...)
}

// Server is a running TURN server.
type Server struct {
	turn    *pionturn.Server
	udp     []net.PacketConn
	tcp     net.Listener
	tls     net.Listener
	quotas  *quotas
	chans   []*channels // one per UDP socket
	log     *slog.Logger
	closing sync.Once
	err     error
}

// New validates cfg, opens the listeners and starts serving.
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
	if cfg.UDPSockets == 0 {
		cfg.UDPSockets = runtime.NumCPU()
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	s := &Server{quotas: newQuotas(cfg.UserQuota, cfg.TotalQuota, cfg.Now), log: cfg.Logger}
	auth := &authenticator{secret: cfg.Secret, realm: cfg.Realm, now: cfg.Now, metrics: m}
	policy := NewPeerPolicy(cfg.AllowPeers)
	g := &guard{auth: auth, quotas: s.quotas, policy: policy, metrics: m, log: cfg.Logger}
	bind := "0.0.0.0"
	if cfg.RelayBindIP.IsValid() {
		bind = cfg.RelayBindIP.Unmap().String()
	}
	gen := &relays{
		next: &pionturn.RelayAddressGeneratorPortRange{
			RelayAddress: net.IP(cfg.RelayIP.Unmap().AsSlice()),
			Address:      bind,
			MinPort:      uint16(cfg.RelayPortMin),
			MaxPort:      uint16(cfg.RelayPortMax),
			MaxRetries:   50,
		},
		quotas: s.quotas, metrics: m, now: cfg.Now,
	}
	permit := func(client net.Addr, peer net.IP) bool {
		if policy.allowedIP(peer) {
			return true
		}
		m.permissionDenials.Inc()
		return false
	}

	if err := s.listen(cfg); err != nil {
		s.closeSockets()
		return nil, err
	}
	sc := pionturn.ServerConfig{
		Realm:         cfg.Realm,
		AuthHandler:   auth.handle,
		LoggerFactory: pionlog.New(cfg.Logger),
	}
	for _, u := range s.udp {
		raw := rawudp.New(u)
		ch := newChannels(s.quotas, raw, cfg.Now)
		s.chans = append(s.chans, ch)
		sc.PacketConnConfigs = append(sc.PacketConnConfigs, pionturn.PacketConnConfig{
			PacketConn:            &packetConn{PacketConn: raw, guard: g, channels: ch, log: cfg.Logger},
			RelayAddressGenerator: gen,
			PermissionHandler:     permit,
		})
	}
	for _, l := range []net.Listener{s.tcp, s.tls} {
		if l != nil {
			sc.ListenerConfigs = append(sc.ListenerConfigs, pionturn.ListenerConfig{
				Listener:              &listener{Listener: l, guard: g},
				RelayAddressGenerator: gen,
				PermissionHandler:     permit,
			})
		}
	}
	s.turn, err = pionturn.NewServer(sc)
	if err != nil {
		s.closeSockets()
		return nil, fmt.Errorf("start turn server: %w", err)
	}
	s.log.Info("turn serving", "udp", s.UDPAddr().String(), "udp_sockets", len(s.udp), "tcp", s.TCPAddr().String(),
		"tls", addrString(s.tls), "relay_ip", cfg.RelayIP.String(), "relay_ports", fmt.Sprintf("%d-%d", cfg.RelayPortMin, cfg.RelayPortMax),
		"allow_peers", fmt.Sprint(cfg.AllowPeers), "user_quota", cfg.UserQuota, "total_quota", cfg.TotalQuota)
	return s, nil
}

// listen opens the UDP sockets, then TCP on the same port, then TLS.
func (s *Server) listen(cfg Config) error {
	host, port, _ := net.SplitHostPort(cfg.Listen)
	// With port 0, the first UDP socket picks the port; TCP may find it taken
	// and then everything is retried on another.
	for attempt := 0; ; attempt++ {
		udp, err := listenUDP(host, port, cfg.UDPSockets)
		if err != nil {
			return err
		}
		s.udp = udp
		p := strconv.Itoa(udp[0].LocalAddr().(*net.UDPAddr).Port)
		s.tcp, err = net.Listen("tcp", net.JoinHostPort(host, p))
		if err == nil {
			break
		}
		s.closeSockets()
		if port != "0" || attempt == 10 {
			return fmt.Errorf("open tcp listener: %w", err)
		}
	}
	if cfg.TLS != nil {
		l, err := tls.Listen("tcp", cfg.TLSListen, cfg.TLS)
		if err != nil {
			return fmt.Errorf("open tls listener: %w", err)
		}
		s.tls = l
	}
	return nil
}

func (s *Server) closeSockets() {
	for _, u := range s.udp {
		_ = u.Close()
	}
	s.udp = nil
	for _, l := range []net.Listener{s.tcp, s.tls} {
		if l != nil {
			_ = l.Close()
		}
	}
	s.tcp, s.tls = nil, nil
}

// UDPAddr is the address of the UDP listeners.
func (s *Server) UDPAddr() net.Addr { return s.udp[0].LocalAddr() }

// TCPAddr is the address of the TCP listener.
func (s *Server) TCPAddr() net.Addr { return s.tcp.Addr() }

// TLSAddr is the address of the TLS listener, or nil without TLS.
func (s *Server) TLSAddr() net.Addr {
	if s.tls == nil {
		return nil
	}
	return s.tls.Addr()
}

func addrString(l net.Listener) string {
	if l == nil {
		return ""
	}
	return l.Addr().String()
}

// Allocations is the number of allocations pion holds now.
func (s *Server) Allocations() int { return s.turn.AllocationCount() }

// Close stops the listeners and closes every allocation.
func (s *Server) Close() error {
	s.closing.Do(func() {
		if err := s.turn.Close(); err != nil {
			s.err = fmt.Errorf("close turn server: %w", err)
		}
	})
	return s.err
}
