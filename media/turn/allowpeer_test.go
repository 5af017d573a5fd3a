package turn

import (
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// TestExactPeerAllowance runs the default policy opened for one exact
// address on loopback, as standalone opens it for the SFU's ICE socket:
// relaying to that address works, to another port of the same IP does not,
// whichever way the client tries.
func TestExactPeerAllowance(t *testing.T) {
	peer := echoPeer(t)
	other, otherGot := recordingPeer(t)
	s, reg := startServer(t, func(c *Config) {
		c.AllowPeers = nil
		c.AllowPeerAddrs = []netip.AddrPort{peer.(*net.UDPAddr).AddrPort()}
	})

	for _, network := range []string{"udp", "tcp"} {
		t.Run(network, func(t *testing.T) {
			server := s.UDPAddr()
			if network == "tcp" {
				server = s.TCPAddr()
			}
			user, pass := creds("ivan-"+network, time.Hour)
			c := dialClient(t, server, network, user, pass, nil)
			relay, err := allocate(t, c)
			if err != nil {
				t.Fatal(err)
			}
			// The allowed address: data both ways, through Send indications
			// first and the channel pion's client binds next.
			relayRoundTrips(t, relay, peer, 20)

			// Another port of the same IP: CreatePermission is refused.
			denials := metricValue(t, reg, "meeting_turn_permission_denials_total", "", "")
			err = c.CreatePermission(other)
			if err == nil || !strings.Contains(err.Error(), "403") {
				t.Fatalf("CreatePermission(%v) = %v, want 403 Forbidden", other, err)
			}
			// The client already holds a permission for 127.0.0.1 (TURN
			// permissions are per IP), so its relay sends to the other port
			// as Send indications and then tries to bind a channel (403):
			// nothing arrives.
			for i := 0; i < 5; i++ {
				_, _ = relay.WriteTo([]byte("to the other port"), other)
			}
			// And the other port cannot reach the client through the relay.
			if _, err := otherGot.conn.WriteTo([]byte("from the other port"), relay.LocalAddr()); err != nil {
				t.Fatal(err)
			}
			_ = relay.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
			if n, from, err := relay.ReadFrom(make([]byte, 1500)); err == nil {
				t.Errorf("client received %d bytes from %v", n, from)
			}
			if n := otherGot.count(); n != 0 {
				t.Fatalf("the other port received %d datagrams", n)
			}
			if after := metricValue(t, reg, "meeting_turn_permission_denials_total", "", ""); after < denials+2 {
				t.Errorf("permission denials %v → %v, want the CreatePermission and the Send indications counted", denials, after)
			}
			// The allowed address still works.
			relayRoundTrips(t, relay, peer, 5)
		})
	}

	// A client that never talked to the allowed address gets 403 for the
	// other port and for any other loopback address straight away.
	user, pass := creds("judy", time.Hour)
	c := dialClient(t, s.UDPAddr(), "udp", user, pass, nil)
	if _, err := allocate(t, c); err != nil {
		t.Fatal(err)
	}
	for _, addr := range []net.Addr{other, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2), Port: peer.(*net.UDPAddr).Port}} {
		if err := c.CreatePermission(addr); err == nil || !strings.Contains(err.Error(), "403") {
			t.Errorf("CreatePermission(%v) = %v, want 403 Forbidden", addr, err)
		}
	}
	if err := c.CreatePermission(peer); err != nil {
		t.Errorf("CreatePermission(%v), the allowed address: %v", peer, err)
	}
	if n := otherGot.count(); n != 0 {
		t.Fatalf("the other port received %d datagrams", n)
	}
}

// recorder counts the datagrams a UDP socket receives.
type recorder struct {
	conn net.PacketConn
	mu   chan struct{}
	n    int
}

func (r *recorder) count() int {
	r.mu <- struct{}{}
	defer func() { <-r.mu }()
	return r.n
}

// recordingPeer is a UDP peer on loopback that answers nothing and counts
// what it receives.
func recordingPeer(t *testing.T) (net.Addr, *recorder) {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	r := &recorder{conn: pc, mu: make(chan struct{}, 1)}
	go func() {
		buf := make([]byte, 1500)
		for {
			if _, _, err := pc.ReadFrom(buf); err != nil {
				return
			}
			r.mu <- struct{}{}
			r.n++
			<-r.mu
		}
	}()
	return pc.LocalAddr(), r
}
