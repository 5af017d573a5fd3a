package turn

import (
	"meeting.dev/meeting/media/token"

	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/logging"
	"github.com/pion/stun"
	pionturn "github.com/pion/turn/v2"
	"github.com/prometheus/client_golang/prometheus"
)

var testSecret = []byte("test-secret-0123456789abcdef")

// startServer runs a server on loopback with random ports that may relay to
// loopback peers, as the tests' peers live there. Unless mutate gives
// sockets, it serves two UDP sockets (SO_REUSEPORT) and a TCP listener.
func startServer(t *testing.T, mutate func(*Config)) (*Server, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	cfg := DefaultConfig()
	cfg.Secret = testSecret
	cfg.RelayIP = netip.MustParseAddr("127.0.0.1")
	cfg.RelayBindIP = netip.MustParseAddr("127.0.0.1")
	cfg.AllowPeers = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	cfg.Registerer = reg
	if mutate != nil {
		mutate(&cfg)
	}
	if cfg.PacketConns == nil && cfg.Listeners == nil {
		cfg.PacketConns = loopbackUDP(t, 2)
		cfg.Listeners = []net.Listener{loopbackTCP(t)}
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s, reg
}

// loopbackUDP opens n SO_REUSEPORT UDP sockets on one random loopback port.
// The server that takes them closes them; so does the test's end.
func loopbackUDP(t *testing.T, n int) []net.PacketConn {
	t.Helper()
	pcs, err := ListenUDP("127.0.0.1:0", n)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, pc := range pcs {
			_ = pc.Close()
		}
	})
	return pcs
}

// loopbackTCP opens a TCP listener on a random loopback port.
func loopbackTCP(t *testing.T) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// dialClient returns a pion TURN client of the server at addr over network
// udp, tcp or tls.
func dialClient(t *testing.T, server net.Addr, network, username, password string, tlsConf *tls.Config) *pionturn.Client {
	t.Helper()
	var conn net.PacketConn
	switch network {
	case "udp":
		c, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		conn = c
	case "tcp":
		c, err := net.Dial("tcp", server.String())
		if err != nil {
			t.Fatal(err)
		}
		conn = pionturn.NewSTUNConn(c)
	case "tls":
		c, err := tls.Dial("tcp", server.String(), tlsConf)
		if err != nil {
			t.Fatal(err)
		}
		conn = pionturn.NewSTUNConn(c)
	}
	logs := logging.NewDefaultLoggerFactory()
	logs.DefaultLogLevel = logging.LogLevelDisabled
	c, err := pionturn.NewClient(&pionturn.ClientConfig{
		STUNServerAddr: server.String(),
		TURNServerAddr: server.String(),
		Conn:           conn,
		Username:       username,
		Password:       password,
		Realm:          DefaultRealm,
		LoggerFactory:  logs,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Listen(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		_ = conn.Close()
	})
	return c
}

// allocate allocates a relay with c and closes it when the test ends (the
// client's refresh timers stop only then).
func allocate(t *testing.T, c *pionturn.Client) (net.PacketConn, error) {
	t.Helper()
	relay, err := c.Allocate()
	if err == nil {
		t.Cleanup(func() { _ = relay.Close() })
	}
	return relay, err
}

func creds(user string, ttl time.Duration) (string, string) {
	return token.TURNCredentials(testSecret, user, ttl, time.Now())
}

// echoPeer is a UDP peer on loopback that answers every datagram with
// "echo:" and the datagram.
func echoPeer(t *testing.T) net.Addr {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo(append([]byte("echo:"), buf[:n]...), from)
		}
	}()
	return pc.LocalAddr()
}

// relayRoundTrips sends n datagrams through relay to the echo peer and
// checks each answer.
func relayRoundTrips(t *testing.T, relay net.PacketConn, peer net.Addr, n int) {
	t.Helper()
	buf := make([]byte, 1500)
	for i := 0; i < n; i++ {
		msg := fmt.Sprintf("ping %d", i)
		if _, err := relay.WriteTo([]byte(msg), peer); err != nil {
			t.Fatalf("relay write %d: %v", i, err)
		}
		if err := relay.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
			t.Fatal(err)
		}
		got, from, err := relay.ReadFrom(buf)
		if err != nil {
			t.Fatalf("relay read %d: %v", i, err)
		}
		if string(buf[:got]) != "echo:"+msg || from.String() != peer.String() {
			t.Fatalf("relay read %d: %q from %v, want %q from %v", i, buf[:got], from, "echo:"+msg, peer)
		}
	}
}

func TestRelayWithEphemeralCredentials(t *testing.T) {
	s, reg := startServer(t, func(c *Config) {
		c.PacketConns = loopbackUDP(t, 3)
	})
	if len(s.udp) != 3 {
		t.Fatalf("%d UDP sockets, want 3", len(s.udp))
	}
	peer := echoPeer(t)
	const clients = 6
	relays := make([]net.PacketConn, clients)
	for i := range relays {
		user, pass := creds(fmt.Sprintf("user%d", i), time.Hour)
		relay, err := allocate(t, dialClient(t, s.UDPAddr(), "udp", user, pass, nil))
		if err != nil {
			t.Fatalf("client %d Allocate: %v", i, err)
		}
		if ip := relay.LocalAddr().(*net.UDPAddr).IP; !ip.Equal(net.IPv4(127, 0, 0, 1)) {
			t.Fatalf("relay address %v, want the relay IP", relay.LocalAddr())
		}
		relays[i] = relay
	}
	for _, relay := range relays {
		relayRoundTrips(t, relay, peer, 20)
	}
	// pion's client binds a channel after its first datagrams, from a
	// goroutine of its own, so the last binding may still be on its way when
	// the echoes are back; from then on ChannelData takes the fast path.
	eventually(t, func() bool { return boundChannels(s) == clients && boundPeers(s) == clients },
		fmt.Sprintf("one channel binding mirrored per client (%d) and on its relay socket", clients))
	if got := metricValue(t, reg, "meeting_turn_allocations", "", ""); got != clients {
		t.Errorf("allocations gauge = %v, want %d", got, clients)
	}
	if got := s.Allocations(); got != clients {
		t.Errorf("Allocations() = %d, want %d", got, clients)
	}
	// The counters move just after each datagram is sent: wait for the last.
	eventually(t, func() bool {
		return metricValue(t, reg, "meeting_turn_relayed_packets_total", "direction", "to_peer") == clients*20 &&
			metricValue(t, reg, "meeting_turn_relayed_packets_total", "direction", "to_client") == clients*20
	}, "relayed packets counted: 20 each way per client")
	// Closing a relay deallocates (Refresh with lifetime 0) and frees the socket.
	if err := relays[0].Close(); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() bool { return s.Allocations() == clients-1 }, "allocation released after the client closed it")
}

func TestRelayOverTCPAndTLS(t *testing.T) {
	cert, pool := selfSigned(t)
	tlsListener := tls.NewListener(loopbackTCP(t), &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	tcp := loopbackTCP(t)
	// Listeners only: a server without UDP.
	s, _ := startServer(t, func(c *Config) { c.Listeners = []net.Listener{tcp, tlsListener} })
	if s.UDPAddr() != nil {
		t.Errorf("UDPAddr() = %v without UDP sockets, want nil", s.UDPAddr())
	}
	if s.TCPAddr().String() != tcp.Addr().String() {
		t.Errorf("TCPAddr() = %v, want the first listener's %v", s.TCPAddr(), tcp.Addr())
	}
	peer := echoPeer(t)
	for network, addr := range map[string]net.Addr{"tcp": tcp.Addr(), "tls": tlsListener.Addr()} {
		t.Run(network, func(t *testing.T) {
			user, pass := creds("carol-"+network, time.Hour)
			relay, err := allocate(t, dialClient(t, addr, network, user, pass, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}))
			if err != nil {
				t.Fatalf("Allocate over %s: %v", network, err)
			}
			relayRoundTrips(t, relay, peer, 20)
		})
	}
}

func TestRefusedCredentials(t *testing.T) {
	s, reg := startServer(t, nil)
	expiredUser, expiredPass := creds("dave", -time.Minute)
	validUser, _ := creds("dave", time.Hour)
	_, otherSecretPass := token.TURNCredentials([]byte("another secret"), "dave", time.Hour, time.Now())
	for _, tc := range []struct {
		name, user, pass, reason string
	}{
		{"expired", expiredUser, expiredPass, "expired"},
		{"wrong password", validUser, "bm90IHRoZSBwYXNzd29yZA==", "integrity"},
		{"other secret", validUser, otherSecretPass, "integrity"},
		{"malformed username", "dave", "whatever", "malformed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := metricValue(t, reg, "meeting_turn_auth_failures_total", "reason", tc.reason)
			relay, err := allocate(t, dialClient(t, s.UDPAddr(), "udp", tc.user, tc.pass, nil))
			if err == nil {
				_ = relay.Close()
				t.Fatal("Allocate succeeded")
			}
			if !strings.Contains(err.Error(), "error response") || !strings.Contains(err.Error(), "401") {
				t.Fatalf("Allocate: %v, want an error response with 401", err)
			}
			if after := metricValue(t, reg, "meeting_turn_auth_failures_total", "reason", tc.reason); after <= before {
				t.Errorf("auth failures{reason=%q} stayed at %v", tc.reason, after)
			}
		})
	}
	if n := s.Allocations(); n != 0 {
		t.Errorf("%d allocations after refused requests", n)
	}

	// The 401 carries the realm and the request's nonce (RFC 8489 9.2.4), and
	// no MESSAGE-INTEGRITY: the server has no key to sign it with.
	nonce := tcpNonce(t, s.TCPAddr())
	conn, err := net.Dial("tcp", s.TCPAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	resp, err := roundTrip(conn, authAllocate(t, stun.NewTransactionID(), validUser, "bm90IHRoZSBwYXNzd29yZA==", nonce))
	if err != nil {
		t.Fatal(err)
	}
	var realm stun.Realm
	var got stun.Nonce
	if code := errorCode(resp); code != 401 || realm.GetFrom(resp) != nil || realm.String() != DefaultRealm ||
		got.GetFrom(resp) != nil || got.String() != nonce || resp.Contains(stun.AttrMessageIntegrity) {
		t.Errorf("answer to a wrong password: code %d, realm %q, nonce %q (sent %q), integrity %v; want 401, %q, the nonce sent, none",
			code, realm, got, nonce, resp.Contains(stun.AttrMessageIntegrity), DefaultRealm)
	}
}

func TestPrivatePeerRefusedByDefault(t *testing.T) {
	// No allow list: the default policy. Only the permission decision is
	// exercised; CreatePermission sends nothing to the peer.
	s, reg := startServer(t, func(c *Config) { c.AllowPeers = nil })
	user, pass := creds("erin", time.Hour)
	c := dialClient(t, s.UDPAddr(), "udp", user, pass, nil)
	relay, err := allocate(t, c)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = relay.Close() }()
	for _, ip := range []string{"10.0.0.1", "127.0.0.1", "169.254.169.254"} {
		err := c.CreatePermission(&net.UDPAddr{IP: net.ParseIP(ip), Port: 3478})
		if err == nil || !strings.Contains(err.Error(), "403") {
			t.Errorf("CreatePermission(%s) = %v, want 403 Forbidden", ip, err)
		}
	}
	if got := metricValue(t, reg, "meeting_turn_permission_denials_total", "", ""); got != 3 {
		t.Errorf("permission denials = %v, want 3", got)
	}
}

func TestAllocationQuotas(t *testing.T) {
	s, reg := startServer(t, func(c *Config) { c.UserQuota = 1; c.TotalQuota = 2 })
	alloc := func(user string) (net.PacketConn, error) {
		u, p := creds(user, time.Hour)
		return allocate(t, dialClient(t, s.UDPAddr(), "udp", u, p, nil))
	}
	first, err := alloc("frank")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alloc("frank"); err == nil || !strings.Contains(err.Error(), "486") {
		t.Fatalf("second allocation of frank: %v, want 486 Allocation Quota Reached", err)
	}
	if _, err := alloc("grace"); err != nil {
		t.Fatalf("grace: %v", err)
	}
	if _, err := alloc("heidi"); err == nil || !strings.Contains(err.Error(), "486") {
		t.Fatalf("third allocation in total: %v, want 486", err)
	}
	if got := metricValue(t, reg, "meeting_turn_quota_refusals_total", "quota", "user"); got != 1 {
		t.Errorf("user quota refusals = %v", got)
	}
	if got := metricValue(t, reg, "meeting_turn_quota_refusals_total", "quota", "total"); got != 1 {
		t.Errorf("total quota refusals = %v", got)
	}
	// Releasing frank's allocation gives the slot back.
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() bool { u, _ := s.quotas.usage("frank"); return u == 0 }, "quota released")
	again, err := alloc("frank")
	if err != nil {
		t.Fatalf("frank after release: %v", err)
	}
	_ = again.Close()
}

func TestConfigValidate(t *testing.T) {
	good := DefaultConfig()
	good.PacketConns = []net.PacketConn{&net.UDPConn{}} // never used: Validate only looks
	good.Secret = []byte("x")
	good.RelayIP = netip.MustParseAddr("203.0.113.7")
	if err := good.Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	for name, mutate := range map[string]func(*Config){
		"no secret":       func(c *Config) { c.Secret = nil },
		"no relay IP":     func(c *Config) { c.RelayIP = netip.Addr{} },
		"IPv6 relay IP":   func(c *Config) { c.RelayIP = netip.MustParseAddr("2001:db8::1") },
		"0.0.0.0 relay":   func(c *Config) { c.RelayIP = netip.MustParseAddr("0.0.0.0") },
		"no sockets":      func(c *Config) { c.PacketConns, c.Listeners = nil, nil },
		"nil packet conn": func(c *Config) { c.PacketConns = []net.PacketConn{nil} },
		"nil listener":    func(c *Config) { c.Listeners = []net.Listener{nil} },
		"empty realm":     func(c *Config) { c.Realm = "" },
		"ports reversed":  func(c *Config) { c.RelayPortMin, c.RelayPortMax = 60000, 50000 },
		"port zero":       func(c *Config) { c.RelayPortMin = 0 },
		"negative quota":  func(c *Config) { c.UserQuota = -1 },
		"negative auth":   func(c *Config) { c.TCPAuthTimeout = -time.Second },
		"negative idle":   func(c *Config) { c.TCPIdleTimeout = -time.Second },
		"negative cap":    func(c *Config) { c.TCPConnsPerSource = -1 },
	} {
		c := good
		mutate(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("%s: Validate passed", name)
		}
	}
}

func boundChannels(s *Server) int {
	n := 0
	for _, ch := range s.chans {
		ch.mu.RLock()
		n += len(ch.bound)
		ch.mu.RUnlock()
	}
	return n
}

func boundPeers(s *Server) int {
	s.quotas.mu.Lock()
	defer s.quotas.mu.Unlock()
	n := 0
	for _, e := range s.quotas.relays {
		if e.conn != nil {
			e.conn.mu.RLock()
			n += len(e.conn.binds)
			e.conn.mu.RUnlock()
		}
	}
	return n
}

func eventually(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// metricValue returns the value of the series name{label=value} (name
// alone when label is empty), 0 when it does not exist yet.
func metricValue(t *testing.T, reg *prometheus.Registry, name, label, value string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			match := label == ""
			for _, l := range m.GetLabel() {
				match = match || (l.GetName() == label && l.GetValue() == value)
			}
			if match {
				return m.GetGauge().GetValue() + m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// selfSigned returns a certificate for 127.0.0.1 and a pool that trusts it.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "turn test"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

// TestServersShareRegisterer runs two servers with one Registerer, as a
// process running several rooms does: both start, and the series count
// for both together.
func TestServersShareRegisterer(t *testing.T) {
	reg := prometheus.NewRegistry()
	shared := func(c *Config) { c.Registerer = reg }
	a, _ := startServer(t, shared)
	b, _ := startServer(t, shared)
	peer := echoPeer(t)
	for i, s := range []*Server{a, b} {
		user, pass := creds(fmt.Sprintf("kim%d", i), time.Hour)
		relay, err := allocate(t, dialClient(t, s.UDPAddr(), "udp", user, pass, nil))
		if err != nil {
			t.Fatalf("server %d: %v", i, err)
		}
		relayRoundTrips(t, relay, peer, 10)
	}
	if got := metricValue(t, reg, "meeting_turn_allocations", "", ""); got != 2 {
		t.Errorf("allocations gauge = %v, want 2 (one per server)", got)
	}
	eventually(t, func() bool {
		return metricValue(t, reg, "meeting_turn_relayed_packets_total", "direction", "to_peer") == 20
	}, "datagrams of both servers counted")
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() bool { return metricValue(t, reg, "meeting_turn_allocations", "", "") == 1 }, "the closed server's allocation removed from the gauge")
	// A server started after another closed registers as well.
	c, _ := startServer(t, shared)
	user, pass := creds("kim2", time.Hour)
	if _, err := allocate(t, dialClient(t, c.UDPAddr(), "udp", user, pass, nil)); err != nil {
		t.Fatal(err)
	}
	if got := metricValue(t, reg, "meeting_turn_allocations", "", ""); got != 2 {
		t.Errorf("allocations gauge = %v, want 2", got)
	}
}

// TestEvenPortAllocationCountedOnce checks that an Allocate asking for an
// even port (EVEN-PORT, as coturn's uclient sends) gets one and is counted
// as one allocation: pion finds the port by opening and closing sockets of
// the relay range until one is even, and those are not allocations.
func TestEvenPortAllocationCountedOnce(t *testing.T) {
	s, reg := startServer(t, nil)
	nonce := tcpNonce(t, s.TCPAddr())
	user, pass := creds("olga", time.Hour)
	conn, err := net.Dial("tcp", s.TCPAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	evenPort := stun.RawAttribute{Type: stun.AttrEvenPort, Value: []byte{0}} // R bit clear: no reservation
	for i := range 4 {
		req := stun.MustBuild(stun.TransactionID, stun.NewType(stun.MethodAllocate, stun.ClassRequest),
			requestedTransportUDP, evenPort, stun.NewUsername(user), stun.NewRealm(DefaultRealm), stun.NewNonce(nonce),
			stun.NewLongTermIntegrity(user, DefaultRealm, pass))
		if i > 0 { // a new connection for each allocation: one per 5-tuple
			_ = conn.Close()
			if conn, err = net.Dial("tcp", s.TCPAddr().String()); err != nil {
				t.Fatal(err)
			}
		}
		resp, err := roundTrip(conn, req.Raw)
		if err != nil {
			t.Fatal(err)
		}
		if code := errorCode(resp); code != 0 {
			t.Fatalf("Allocate with EVEN-PORT %d: error %d", i, code)
		}
		var relayed stun.XORMappedAddress
		if err := relayed.GetFromAs(resp, stun.AttrXORRelayedAddress); err != nil {
			t.Fatal(err)
		}
		if relayed.Port%2 != 0 {
			t.Errorf("Allocate with EVEN-PORT got relay port %d", relayed.Port)
		}
	}
	// The last connection still holds its allocation; the others closed.
	eventually(t, func() bool { return s.Allocations() == 1 }, "one allocation left open")
	if got := metricValue(t, reg, "meeting_turn_allocations_total", "", ""); got != 4 {
		t.Errorf("allocations counted: %v, want 4", got)
	}
	if got := metricValue(t, reg, "meeting_turn_allocations", "", ""); got != 1 {
		t.Errorf("allocations gauge: %v, want 1", got)
	}
}

// recordingHandler keeps the messages of the records at Warn and above.
type recordingHandler struct {
	mu   sync.Mutex
	msgs []string
}

func (h *recordingHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }

func (h *recordingHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.msgs = append(h.msgs, r.Message)
	return nil
}

func (h *recordingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *recordingHandler) WithGroup(string) slog.Handler      { return h }

func (h *recordingHandler) messages() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.msgs)
}

// Close lets pion close every allocation before the event loops close the
// sockets still open: pion closes its allocations in goroutines of its own
// after Server.Close returns, and a relay socket the loops closed first made
// it log "Failed to close allocation" and give up on the rest.
func TestCloseLetsPionCloseAllocations(t *testing.T) {
	logs := &recordingHandler{}
	s, _ := startServer(t, func(cfg *Config) {
		cfg.PacketConns = loopbackUDP(t, 2)
		cfg.Logger = slog.New(logs)
	})
	const clients = 40
	for i := range clients {
		user, pass := creds(fmt.Sprintf("u%d", i), time.Hour)
		if _, err := allocate(t, dialClient(t, s.UDPAddr(), "udp", user, pass, nil)); err != nil {
			t.Fatalf("allocate %d: %v", i, err)
		}
	}
	if n := s.Allocations(); n != clients {
		t.Fatalf("%d allocations before Close, want %d", n, clients)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if n := s.Allocations(); n != 0 {
		t.Errorf("%d allocations left after Close, want 0", n)
	}
	if msgs := logs.messages(); len(msgs) > 0 {
		t.Errorf("Close logged %d warnings or errors, the first: %q", len(msgs), msgs[0])
	}
}
