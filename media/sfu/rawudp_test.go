package sfu

import (
	"bytes"
	"net"
	"os"
	"testing"
	"time"
)

func TestRawUDPRoundTrip(t *testing.T) {
	for _, tc := range []struct{ network, bind, peer string }{
		{"udp4", "127.0.0.1:0", "127.0.0.1:0"},
		{"udp4", "0.0.0.0:0", "127.0.0.1:0"},
		{"udp", ":0", "127.0.0.1:0"}, // dual-stack socket, IPv4 peer
		{"udp6", "[::1]:0", "[::1]:0"},
	} {
		t.Run(tc.network+" "+tc.bind, func(t *testing.T) {
			pc, err := net.ListenPacket(tc.network, tc.bind)
			if err != nil {
				t.Skipf("no %s socket here: %v", tc.network, err)
			}
			defer pc.Close()
			c := newRawUDP(pc)
			if _, ok := c.(*rawUDP); !ok && isLinux {
				t.Fatalf("newRawUDP returned %T", c)
			}
			peer, err := net.ListenPacket("udp", tc.peer)
			if err != nil {
				t.Skipf("no peer socket: %v", err)
			}
			defer peer.Close()
			_ = peer.SetDeadline(time.Now().Add(5 * time.Second))
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))

			if _, err := c.WriteTo([]byte("ping"), peer.LocalAddr()); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 100)
			n, from, err := peer.ReadFrom(buf)
			if err != nil || string(buf[:n]) != "ping" {
				t.Fatalf("peer read %q %v", buf[:n], err)
			}
			if from.(*net.UDPAddr).Port != c.LocalAddr().(*net.UDPAddr).Port {
				t.Fatalf("from %v, want port of %v", from, c.LocalAddr())
			}
			if _, err := peer.WriteTo([]byte("pong!"), from); err != nil {
				t.Fatal(err)
			}
			n, addr, err := c.ReadFrom(buf)
			if err != nil || !bytes.Equal(buf[:n], []byte("pong!")) {
				t.Fatalf("read %q %v", buf[:n], err)
			}
			ua := addr.(*net.UDPAddr)
			want := peer.LocalAddr().(*net.UDPAddr)
			if ua.Port != want.Port || !ua.IP.Equal(want.IP) {
				t.Fatalf("from %v, want %v", ua, want)
			}
		})
	}
}

func TestRawUDPReadDeadline(t *testing.T) {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	c := newRawUDP(pc)
	_ = c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, _, err := c.ReadFrom(make([]byte, 10)); !os.IsTimeout(err) {
		t.Fatalf("read past the deadline: %v, want a timeout", err)
	}
	_ = c.Close()
	if _, _, err := c.ReadFrom(make([]byte, 10)); err == nil {
		t.Fatal("read on a closed socket succeeded")
	}
}
