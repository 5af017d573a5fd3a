package rawudp

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"testing"
	"time"
)

// listen opens a socket, skipping the test where the family is missing.
func listen(t *testing.T, network, bind string) net.PacketConn {
	t.Helper()
	c, err := net.ListenPacket(network, bind)
	if err != nil {
		t.Skipf("no %s socket here: %v", network, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// TestRoundTrip exchanges datagrams between wrapped and ordinary sockets of
// every family the SFU and the TURN server use: IPv4, IPv6 and dual-stack
// (IPv4 as mapped addresses).
func TestRoundTrip(t *testing.T) {
	for _, tc := range []struct{ name, network, bind, peerNetwork, peerBind string }{
		{"ipv4", "udp4", "127.0.0.1:0", "udp4", "127.0.0.1:0"},
		{"ipv4 unspecified", "udp4", "0.0.0.0:0", "udp4", "127.0.0.1:0"},
		{"dual stack to ipv4", "udp", ":0", "udp4", "127.0.0.1:0"},
		{"ipv6", "udp6", "[::1]:0", "udp6", "[::1]:0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pc := listen(t, tc.network, tc.bind)
			raw := New(pc)
			if isWrapped(raw) != isLinux {
				t.Fatalf("New returned %T", raw)
			}
			if !isLinux && raw != pc {
				t.Fatal("New did not return its argument off Linux")
			}
			peer := listen(t, tc.peerNetwork, tc.peerBind)
			_ = peer.SetDeadline(time.Now().Add(5 * time.Second))
			_ = raw.SetDeadline(time.Now().Add(5 * time.Second))
			peerAddr := peer.LocalAddr().(*net.UDPAddr)
			rawAddr := &net.UDPAddr{IP: peerAddr.IP, Port: raw.LocalAddr().(*net.UDPAddr).Port}
			buf := make([]byte, 100)

			// Out first: the peer sees the raw socket's port.
			if _, err := raw.WriteTo([]byte("ping"), peerAddr); err != nil {
				t.Fatal(err)
			}
			n, from, err := peer.ReadFrom(buf)
			if err != nil || string(buf[:n]) != "ping" {
				t.Fatalf("peer read %q, %v", buf[:n], err)
			}
			if from.(*net.UDPAddr).Port != rawAddr.Port {
				t.Fatalf("from %v, want port of %v", from, raw.LocalAddr())
			}

			// In and back out, several times: a source seen before.
			for i := 0; i < 3; i++ {
				if _, err := peer.WriteTo([]byte("pong!"), rawAddr); err != nil {
					t.Fatal(err)
				}
				n, from, err := raw.ReadFrom(buf)
				if err != nil || !bytes.Equal(buf[:n], []byte("pong!")) {
					t.Fatalf("raw read %q, %v", buf[:n], err)
				}
				ua := from.(*net.UDPAddr)
				if ua.Port != peerAddr.Port || !ua.IP.Equal(peerAddr.IP) {
					t.Fatalf("from %v, want %v", ua, peerAddr)
				}
				if _, err := raw.WriteTo([]byte("out"), from); err != nil {
					t.Fatalf("raw write to %v: %v", from, err)
				}
				n, _, err = peer.ReadFrom(buf)
				if err != nil || string(buf[:n]) != "out" {
					t.Fatalf("peer read %q, %v", buf[:n], err)
				}
			}

			// A deadline in the past ends a read, as with net.UDPConn.
			_ = raw.SetReadDeadline(time.Now().Add(-time.Second))
			if _, _, err := raw.ReadFrom(buf); !os.IsTimeout(err) {
				t.Fatalf("read past its deadline: %v, want a timeout", err)
			}
			// Closing ends a read that is waiting.
			_ = raw.SetReadDeadline(time.Time{})
			go func() { time.Sleep(50 * time.Millisecond); _ = raw.Close() }()
			if _, _, err := raw.ReadFrom(buf); !errors.Is(err, net.ErrClosed) {
				t.Fatalf("read on a closed socket: %v, want net.ErrClosed", err)
			}
			if _, err := raw.WriteTo([]byte("x"), peerAddr); !errors.Is(err, net.ErrClosed) {
				t.Fatalf("write on a closed socket: %v, want net.ErrClosed", err)
			}
		})
	}
}

func TestReadDeadline(t *testing.T) {
	c := New(listen(t, "udp4", "127.0.0.1:0"))
	_ = c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, _, err := c.ReadFrom(make([]byte, 10)); !os.IsTimeout(err) {
		t.Fatalf("read past the deadline: %v, want a timeout", err)
	}
	_ = c.Close()
	if _, _, err := c.ReadFrom(make([]byte, 10)); err == nil {
		t.Fatal("read on a closed socket succeeded")
	}
}

// TestConcurrent writes from several goroutines at once (the SFU forwards one
// track per goroutine) to several receivers, and reads with several
// goroutines at once, from several sources: every datagram arrives whole, at
// the receiver it was sent to, attributed to the source that sent it.
func TestConcurrent(t *testing.T) {
	const writers, receivers, perWriter = 4, 3, 50 // few enough to fit in the receive buffers
	raw := New(listen(t, "udp4", "127.0.0.1:0"))
	var peers []net.PacketConn
	for i := 0; i < receivers; i++ {
		p := listen(t, "udp4", "127.0.0.1:0")
		_ = p.SetDeadline(time.Now().Add(10 * time.Second))
		peers = append(peers, p)
	}

	// Out: every writer sends perWriter datagrams to every receiver.
	got := make([]map[string]bool, receivers)
	var rwg sync.WaitGroup
	for r, p := range peers {
		got[r] = map[string]bool{}
		rwg.Add(1)
		go func() {
			defer rwg.Done()
			buf := make([]byte, 100)
			for len(got[r]) < writers*perWriter {
				n, _, err := p.ReadFrom(buf)
				if err != nil {
					return
				}
				got[r][string(buf[:n])] = true
			}
		}()
	}
	var wwg sync.WaitGroup
	errs := make(chan error, writers)
	for w := 0; w < writers; w++ {
		wwg.Add(1)
		go func() {
			defer wwg.Done()
			for i := 0; i < perWriter; i++ {
				for r, p := range peers {
					msg := fmt.Sprintf("w%d r%d #%d", w, r, i)
					if _, err := raw.WriteTo([]byte(msg), p.LocalAddr()); err != nil {
						errs <- err
						return
					}
				}
			}
		}()
	}
	wwg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent write: %v", err)
	}
	rwg.Wait()
	for r := range peers {
		for w := 0; w < writers; w++ {
			for i := 0; i < perWriter; i++ {
				if msg := fmt.Sprintf("w%d r%d #%d", w, r, i); !got[r][msg] {
					t.Fatalf("receiver %d lacks %q (has %d datagrams)", r, msg, len(got[r]))
				}
			}
		}
	}

	// In: every receiver sends to the raw socket, read by several goroutines.
	_ = raw.SetReadDeadline(time.Now().Add(10 * time.Second))
	var mu sync.Mutex
	seen := map[string]bool{}
	var bad []string
	total := receivers * perWriter
	var readers sync.WaitGroup
	for i := 0; i < writers; i++ {
		readers.Add(1)
		go func() {
			defer readers.Done()
			buf := make([]byte, 100)
			for {
				n, from, err := raw.ReadFrom(buf)
				if err != nil {
					return
				}
				msg, port := string(buf[:n]), from.(*net.UDPAddr).Port
				mu.Lock()
				var r, i int
				if _, err := fmt.Sscanf(msg, "r%d #%d", &r, &i); err != nil || r >= receivers || peers[r].LocalAddr().(*net.UDPAddr).Port != port {
					bad = append(bad, fmt.Sprintf("%q from port %d", msg, port))
				}
				seen[msg] = true
				done := len(seen) == total
				mu.Unlock()
				if done {
					_ = raw.SetReadDeadline(time.Now()) // wake the other readers
					return
				}
			}
		}()
	}
	for i := 0; i < perWriter; i++ {
		for r, p := range peers {
			if _, err := p.WriteTo([]byte(fmt.Sprintf("r%d #%d", r, i)), raw.LocalAddr()); err != nil {
				t.Fatal(err)
			}
		}
	}
	readers.Wait()
	if len(bad) > 0 {
		t.Fatalf("datagrams attributed to the wrong source: %v", bad)
	}
	if len(seen) != total {
		t.Fatalf("read %d distinct datagrams, want %d", len(seen), total)
	}
}
