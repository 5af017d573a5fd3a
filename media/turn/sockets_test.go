package turn

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"meeting.dev/meeting/internal/sockbuf"
)

func TestListenUDP(t *testing.T) {
	for _, tc := range []struct{ n, want int }{{3, 3}, {1, 1}, {0, runtime.NumCPU()}, {-1, runtime.NumCPU()}} {
		pcs, err := ListenUDP("127.0.0.1:0", tc.n)
		if err != nil {
			t.Fatalf("ListenUDP(n=%d): %v", tc.n, err)
		}
		if runtime.GOOS != "linux" {
			tc.want = 1
		}
		if len(pcs) != tc.want {
			t.Errorf("ListenUDP(n=%d) opened %d sockets, want %d", tc.n, len(pcs), tc.want)
		}
		for _, pc := range pcs {
			if pc.LocalAddr().String() != pcs[0].LocalAddr().String() {
				t.Errorf("sockets on %v and %v, want one port", pcs[0].LocalAddr(), pc.LocalAddr())
			}
			// Each asks for DefaultUDPBuffer, which the kernel grants in
			// full when its limit allows.
			if got, err := sockbuf.Set(pc, 0); err != nil {
				t.Errorf("socket buffers: %v", err)
			} else if want := min(DefaultUDPBuffer, rmemMax(t)); runtime.GOOS == "linux" && got.Read != want {
				t.Errorf("receive buffer %d bytes, want %d", got.Read, want)
			}
			_ = pc.Close()
		}
	}
	if _, err := ListenUDP("127.0.0.1:x", 1); err == nil {
		t.Error("ListenUDP on a bad address succeeded")
	}
}

// TestServerOwnsSockets checks the ownership Config documents: a failed New
// leaves the sockets open, Close closes them.
func TestServerOwnsSockets(t *testing.T) {
	pcs := loopbackUDP(t, 1)
	tcp := loopbackTCP(t)
	cfg := DefaultConfig()
	cfg.PacketConns, cfg.Listeners = pcs, []net.Listener{tcp}
	cfg.Secret = testSecret
	if _, err := New(cfg); err == nil {
		t.Fatal("New without a relay IP succeeded")
	}
	if err := pcs[0].SetReadDeadline(time.Time{}); err != nil {
		t.Fatalf("UDP socket closed by a failed New: %v", err)
	}
	cfg.RelayIP = netip.MustParseAddr("127.0.0.1")
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, _, err := pcs[0].ReadFrom(make([]byte, 10)); !errors.Is(err, net.ErrClosed) {
		t.Errorf("UDP socket after Close: read error %v, want net.ErrClosed", err)
	}
	if _, err := tcp.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("TCP listener after Close: accept error %v, want net.ErrClosed", err)
	}
}

// rmemMax is the kernel's limit on a socket's receive buffer (Linux).
func rmemMax(t *testing.T) int {
	t.Helper()
	if runtime.GOOS != "linux" {
		return 0
	}
	b, err := os.ReadFile("/proc/sys/net/core/rmem_max")
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return n
}
