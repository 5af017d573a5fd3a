package turn

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"meeting.dev/meeting/media/internal/udploop"
)

// TestChannelsFallBackToPion checks that the fast path declines what it does
// not know for sure: unbound channels, truncated frames, expired bindings
// and bindings whose allocation has closed.
func TestChannelsFallBackToPion(t *testing.T) {
	now := time.Unix(1000, 0)
	peer, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = peer.Close() }()
	sock, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m, err := newMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	loop, err := udploop.New()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = loop.Close() }()
	relay := &relayConn{key: "k", relays: &relays{quotas: newQuotas(0, 0, time.Now), metrics: m}}
	if relay.Conn, err = loop.Adopt(sock, relay.handle); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = relay.Close() }()
	ch := newChannels(newQuotas(0, 0, time.Now), func() time.Time { return now })
	client := netip.MustParseAddrPort("127.0.0.1:40000")
	key := channelKey{client: client, number: 0x4001}
	peerAddr := peer.LocalAddr().(*net.UDPAddr).AddrPort()
	ch.bound[key] = channelEntry{relay: relay, peer: peerAddr, expires: now.Add(time.Minute)}

	frame := func(number uint16, payload string, size int) []byte {
		b := make([]byte, 4+len(payload))
		binary.BigEndian.PutUint16(b[0:2], number)
		binary.BigEndian.PutUint16(b[2:4], uint16(size))
		copy(b[4:], payload)
		return b
	}
	if !ch.relay(frame(0x4001, "hello", 5), client) {
		t.Fatal("bound channel not relayed")
	}
	buf := make([]byte, 100)
	_ = peer.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, _, err := peer.ReadFrom(buf); err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("peer got %q, %v", buf[:n], err)
	}
	if ch.relay(frame(0x4002, "x", 1), client) {
		t.Error("unbound channel relayed")
	}
	if ch.relay(frame(0x4001, "x", 9), client) {
		t.Error("frame shorter than its length field relayed")
	}
	if ch.relay(frame(0x4001, "x", 1), netip.MustParseAddrPort("127.0.0.1:40001")) {
		t.Error("channel of another client relayed")
	}
	now = now.Add(2 * time.Minute)
	if ch.relay(frame(0x4001, "x", 1), client) {
		t.Error("expired binding relayed")
	}
	if len(ch.bound) != 0 {
		t.Error("expired binding kept")
	}
	ch.bound[key] = channelEntry{relay: relay, peer: peerAddr, expires: now.Add(time.Minute)}
	_ = relay.Close()
	if ch.relay(frame(0x4001, "x", 1), client) {
		t.Error("binding of a closed allocation relayed")
	}
}
