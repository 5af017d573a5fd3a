package e2e

import (
	"context"
	"log/slog"
	"net"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v3"
	"github.com/prometheus/client_golang/prometheus"

	"meeting.dev/meeting/media/client"
	"meeting.dev/meeting/media/sfu"
	"meeting.dev/meeting/media/signal"
	"meeting.dev/meeting/media/token"
	"meeting.dev/meeting/media/turn"
)

// TestRelayOnlySessionThroughTURNIntoSFU joins two participants whose ICE
// may use relay candidates only, from our TURN server (reached over UDP, and
// over TCP), and checks that the audio and video one publishes reach the
// other through the relay.
func TestRelayOnlySessionThroughTURNIntoSFU(t *testing.T) {
	for _, transport := range []string{"udp", "tcp"} {
		t.Run(transport, func(t *testing.T) { relayOnlySession(t, transport) })
	}
}

func relayOnlySession(t *testing.T, transport string) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	quiet := slog.New(slog.DiscardHandler)

	secret := []byte("relay test turn secret")
	reg := prometheus.NewRegistry()
	tcfg := turn.DefaultConfig()
	turnUDP, err := turn.ListenUDP("127.0.0.1:0", 1)
	if err != nil {
		t.Fatal(err)
	}
	// TCP on the UDP port, as the ICE server URL below names one address.
	turnTCP, err := net.Listen("tcp", turnUDP[0].LocalAddr().String())
	if err != nil {
		_ = turnUDP[0].Close()
		t.Fatal(err)
	}
	tcfg.PacketConns, tcfg.Listeners = turnUDP, []net.Listener{turnTCP}
	tcfg.Secret = secret
	tcfg.RelayIP = netip.MustParseAddr("127.0.0.1")
	tcfg.RelayBindIP = tcfg.RelayIP
	tcfg.AllowPeers = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")} // the SFU is on loopback
	tcfg.Registerer = reg
	tcfg.Logger = quiet
	ts, err := turn.New(tcfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ts.Close() }()

	key := []byte("relay test: 32 bytes of room key")
	iceConn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = iceConn.Close() }()
	s, err := sfu.New(sfu.Config{Keys: func(string) ([]byte, error) { return key, nil }, Logger: quiet}, iceConn)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	hs := httptest.NewServer(s.Handler())
	defer hs.Close()
	wsURL := "ws" + strings.TrimPrefix(hs.URL, "http") + "/ws"

	joinRelayed := func(user string) *client.Client {
		tok, err := token.Mint(key, token.Claims{Room: "relay-room", User: user, Name: user}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		name, pass := token.TURNCredentials(secret, user, time.Hour, time.Now())
		c, err := client.Join(ctx, client.Options{
			URL:   wsURL,
			Token: tok,
			ICEServers: []webrtc.ICEServer{{
				URLs:       []string{"turn:" + ts.UDPAddr().String() + "?transport=" + transport},
				Username:   name,
				Credential: pass,
			}},
			RelayOnly: true,
		})
		if err != nil {
			t.Fatalf("join %s: %v", user, err)
		}
		t.Cleanup(c.Close)
		return c
	}
	alice, bob := joinRelayed("alice"), joinRelayed("bob")
	for _, src := range []string{signal.SourceAudio, signal.SourceCamera} {
		if _, err := alice.Publish(ctx, src, client.MediaOptions{}); err != nil {
			t.Fatalf("publish %s: %v", src, err)
		}
	}
	err = client.Wait(ctx, func() bool {
		got := map[string]bool{}
		for _, st := range bob.Tracks() {
			if st.Info.Participant == alice.ID() && st.Packets >= 30 && (st.Info.Kind == "audio" || st.Keyframes > 0) {
				got[st.Info.Source] = true
			}
		}
		return got[signal.SourceAudio] && got[signal.SourceCamera]
	})
	if err != nil {
		t.Fatalf("bob did not receive alice's audio and video through the relay: %v (tracks %+v)", err, bob.Tracks())
	}

	// The media went through the relay: both clients hold allocations and
	// the relay carried datagrams both ways.
	if n := ts.Allocations(); n < 2 {
		t.Errorf("%d TURN allocations, want at least one per participant", n)
	}
	toPeer, toClient := turnRelayed(t, reg, "to_peer"), turnRelayed(t, reg, "to_client")
	if toPeer < 60 || toClient < 60 {
		t.Errorf("relayed datagrams to_peer=%v to_client=%v, want media in both directions", toPeer, toClient)
	}
}

// turnRelayed reads meeting_turn_relayed_packets_total{direction=...} from reg.
func turnRelayed(t *testing.T, reg *prometheus.Registry, direction string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "meeting_turn_relayed_packets_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "direction" && l.GetValue() == direction {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}
