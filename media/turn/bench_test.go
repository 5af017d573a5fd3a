package turn

import (
	"encoding/binary"
	"log/slog"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/stun"
	"github.com/prometheus/client_golang/prometheus"

	"meeting.dev/meeting/media/internal/udploop"
)

// The benchmarks below run the channel fast path, the bulk of relayed
// traffic, over real loopback sockets one datagram at a time: they are
// dominated by syscalls, and are here for allocs/op, which must stay 0.

type fastPath struct {
	client, peer, other *net.UDPConn
	server, relaySock   *net.UDPConn
	pc                  *packetConn
	relay               *relayConn
}

func udp4(b *testing.B) *net.UDPConn {
	b.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = c.Close() })
	return c
}

func addrPort(c *net.UDPConn) netip.AddrPort { return c.LocalAddr().(*net.UDPAddr).AddrPort() }

// newFastPath wires a client-facing socket and a relay socket as the
// Server does, with channel 0x4001 bound between client and peer both ways.
func newFastPath(b *testing.B) *fastPath {
	f := &fastPath{client: udp4(b), peer: udp4(b), other: udp4(b), server: udp4(b), relaySock: udp4(b)}
	m, err := newMetrics(prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	q := newQuotas(0, 0, time.Now)
	loop, err := udploop.New()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = loop.Close() })
	f.relay = &relayConn{key: "bench", relays: &relays{quotas: q, metrics: m, policy: NewPeerPolicy(nil), now: time.Now}}
	ch := newChannels(q, time.Now)
	expires := time.Now().Add(time.Hour)
	ch.bound[channelKey{client: addrPort(f.client), number: 0x4001}] = channelEntry{relay: f.relay, peer: addrPort(f.peer), expires: expires}
	// Nothing is sent before both sockets are served.
	if ch.sock, err = loop.Adopt(f.server, ch.handle); err != nil {
		b.Fatal(err)
	}
	f.relay.bind(addrPort(f.peer), peerBinding{sock: ch.sock, client: addrPort(f.client), number: 0x4001, expires: expires})
	if f.relay.Conn, err = loop.Adopt(f.relaySock, f.relay.handle); err != nil {
		b.Fatal(err)
	}
	f.pc = &packetConn{Conn: ch.sock, guard: &guard{}, channels: ch, log: slog.New(slog.DiscardHandler)}
	return f
}

// BenchmarkFastPathClientToPeer: ChannelData from a client leaves the
// relay socket as a plain datagram (the event loop → channels.handle).
func BenchmarkFastPathClientToPeer(b *testing.B) {
	f := newFastPath(b)
	frame := make([]byte, 4+100)
	binary.BigEndian.PutUint16(frame[0:2], 0x4001)
	binary.BigEndian.PutUint16(frame[2:4], 100)
	buf := make([]byte, 1600)
	to := addrPort(f.server)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := f.client.WriteToUDPAddrPort(frame, to); err != nil {
			b.Fatal(err)
		}
		if n, _, err := f.peer.ReadFromUDPAddrPort(buf); err != nil || n != 100 {
			b.Fatalf("peer read %d, %v", n, err)
		}
	}
	b.StopTimer()
	req := stun.MustBuild(stun.TransactionID, stun.BindingRequest)
	_, _ = f.client.WriteToUDPAddrPort(req.Raw, to)
	if n, _, err := f.pc.ReadFrom(buf); err != nil || n != len(req.Raw) {
		b.Fatalf("pion's path got %d, %v", n, err)
	}
}

// BenchmarkFastPathPeerToClient: a datagram from a bound peer reaches the
// client as ChannelData (the event loop → relayConn.handle).
func BenchmarkFastPathPeerToClient(b *testing.B) {
	f := newFastPath(b)
	data := make([]byte, 100)
	buf := make([]byte, 1600)
	to := addrPort(f.relaySock)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := f.peer.WriteToUDPAddrPort(data, to); err != nil {
			b.Fatal(err)
		}
		if n, _, err := f.client.ReadFromUDPAddrPort(buf); err != nil || n != 104 {
			b.Fatalf("client read %d, %v", n, err)
		}
	}
	b.StopTimer()
	_, _ = f.other.WriteToUDPAddrPort(data, to)
	if n, _, err := f.relay.ReadFrom(buf); err != nil || n != len(data) {
		b.Fatalf("pion's path got %d, %v", n, err)
	}
}

// BenchmarkPionPathToClient: what pion sends a UDP client (here ChannelData
// of an unbound channel, as pion relays it) passes packetConn.WriteTo.
func BenchmarkPionPathToClient(b *testing.B) {
	f := newFastPath(b)
	frame := make([]byte, 4+100)
	binary.BigEndian.PutUint16(frame[0:2], 0x4002)
	binary.BigEndian.PutUint16(frame[2:4], 100)
	buf := make([]byte, 1600)
	to := f.client.LocalAddr()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := f.pc.WriteTo(frame, to); err != nil {
			b.Fatal(err)
		}
		if n, _, err := f.client.ReadFromUDPAddrPort(buf); err != nil || n != 104 {
			b.Fatalf("client read %d, %v", n, err)
		}
	}
}

// BenchmarkPionPathFromExactPeer: with exact peer addresses allowed
// (standalone), a datagram from an unbound peer is checked against the
// policy on the relay socket before pion gets it.
func BenchmarkPionPathFromExactPeer(b *testing.B) {
	f := newFastPath(b)
	f.relay.relays.policy = NewPeerPolicy(nil, addrPort(f.other))
	data := make([]byte, 100)
	buf := make([]byte, 1600)
	to := addrPort(f.relaySock)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := f.other.WriteToUDPAddrPort(data, to); err != nil {
			b.Fatal(err)
		}
		if n, _, err := f.relay.ReadFrom(buf); err != nil || n != 100 {
			b.Fatalf("relay read %d, %v", n, err)
		}
	}
}
