package turn

import (
	"net"
	"testing"
	"time"
)

// TestRawUDP exchanges datagrams between raw and ordinary sockets of every
// family the server uses: IPv4, IPv6 and dual-stack (IPv4 as mapped addresses).
func TestRawUDP(t *testing.T) {
	for _, tc := range []struct{ name, network, bind, peerNetwork, peerBind string }{
		{"ipv4", "udp4", "127.0.0.1:0", "udp4", "127.0.0.1:0"},
		{"ipv6", "udp6", "[::1]:0", "udp6", "[::1]:0"},
		{"dual stack to ipv4", "udp", ":0", "udp4", "127.0.0.1:0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.ListenPacket(tc.network, tc.bind)
			if err != nil {
				t.Skipf("no %s socket here: %v", tc.network, err)
			}
			defer func() { _ = c.Close() }()
			raw := newRawUDP(c)
			if _, ok := raw.(*rawUDP); !ok {
				t.Fatal("not wrapped")
			}
			peer, err := net.ListenPacket(tc.peerNetwork, tc.peerBind)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = peer.Close() }()
			port := c.LocalAddr().(*net.UDPAddr).Port
			host := peer.LocalAddr().(*net.UDPAddr).IP
			to := &net.UDPAddr{IP: host, Port: port}
			buf := make([]byte, 100)
			for i := 0; i < 3; i++ {
				if _, err := peer.WriteTo([]byte("in"), to); err != nil {
					t.Fatal(err)
				}
				_ = raw.SetReadDeadline(time.Now().Add(5 * time.Second))
				n, from, err := raw.ReadFrom(buf)
				if err != nil || string(buf[:n]) != "in" || from.(*net.UDPAddr).Port != peer.LocalAddr().(*net.UDPAddr).Port {
					t.Fatalf("raw read: %q from %v, %v", buf[:n], from, err)
				}
				if _, err := raw.WriteTo([]byte("out"), from); err != nil {
					t.Fatalf("raw write to %v: %v", from, err)
				}
				_ = peer.SetReadDeadline(time.Now().Add(5 * time.Second))
				n, _, err = peer.ReadFrom(buf)
				if err != nil || string(buf[:n]) != "out" {
					t.Fatalf("peer read: %q, %v", buf[:n], err)
				}
			}
			// A deadline in the past ends a read, as with net.UDPConn.
			_ = raw.SetReadDeadline(time.Now().Add(-time.Second))
			if _, _, err := raw.ReadFrom(buf); err == nil {
				t.Fatal("read past its deadline succeeded")
			}
			// Closing ends a read.
			_ = raw.SetReadDeadline(time.Time{})
			go func() { time.Sleep(50 * time.Millisecond); _ = raw.Close() }()
			if _, _, err := raw.ReadFrom(buf); err == nil {
				t.Fatal("read on a closed socket succeeded")
			}
		})
	}
}
