package main

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"meeting.dev/meeting/internal/sockbuf"
	"meeting.dev/meeting/media/turn"
)

// parseTURN reads the turn role's flags from args (and the environment)
// and completes its configuration.
func parseTURN(t *testing.T, args ...string) (*turnFlags, error) {
	t.Helper()
	var f turnFlags
	fs := newFlagSet("meeting turn", "", io.Discard, "")
	f.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return &f, err
	}
	cfg, err := f.config()
	f.cfg = cfg
	return &f, err
}

func TestTURNAllowPeerAddrFlag(t *testing.T) {
	t.Setenv("MEETING_TURN_SECRET", "s")
	t.Setenv("MEETING_ALLOW_PEER_ADDR", "")
	f, err := parseTURN(t, "--relay-ip", "127.0.0.1",
		"--allow-peer-addr", "127.0.0.1:7882", "--allow-peer-addr", "10.0.0.5:443,[fd00::1]:9")
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.AddrPort{
		netip.MustParseAddrPort("127.0.0.1:7882"),
		netip.MustParseAddrPort("10.0.0.5:443"),
		netip.MustParseAddrPort("[fd00::1]:9"),
	}
	if !slices.Equal(f.cfg.AllowPeerAddrs, want) {
		t.Errorf("AllowPeerAddrs = %v, want %v", f.cfg.AllowPeerAddrs, want)
	}

	t.Setenv("MEETING_ALLOW_PEER_ADDR", "127.0.0.1:7882, 127.0.0.1:7883")
	f, err = parseTURN(t, "--relay-ip", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	if len(f.cfg.AllowPeerAddrs) != 2 {
		t.Errorf("AllowPeerAddrs from the environment = %v, want two", f.cfg.AllowPeerAddrs)
	}
	t.Setenv("MEETING_ALLOW_PEER_ADDR", "")

	for _, bad := range []string{"127.0.0.1", "127.0.0.1:0", "localhost:7882", "10.0.0.0/8"} {
		if _, err := parseTURN(t, "--relay-ip", "127.0.0.1", "--allow-peer-addr", bad); err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("--allow-peer-addr %s: %v, want an error naming it", bad, err)
		}
	}
}

func TestTURNAdaptiveProcsFlag(t *testing.T) {
	t.Setenv("MEETING_TURN_SECRET", "s")
	for _, tc := range []struct {
		gomaxprocs string
		args       []string
		want       bool
	}{
		{"", nil, false},
		{"", []string{"--adaptive-procs"}, true},
		{"2", []string{"--adaptive-procs"}, false}, // GOMAXPROCS set by hand wins
	} {
		t.Setenv("GOMAXPROCS", tc.gomaxprocs)
		f, err := parseTURN(t, append([]string{"--relay-ip", "127.0.0.1"}, tc.args...)...)
		if err != nil {
			t.Fatal(err)
		}
		if f.cfg.AdaptiveProcs != tc.want {
			t.Errorf("GOMAXPROCS=%q %v: AdaptiveProcs = %v, want %v", tc.gomaxprocs, tc.args, f.cfg.AdaptiveProcs, tc.want)
		}
	}
}

// TestTURNOpenSockets checks the sockets the role hands the server: the
// UDP group and TCP on one port, and TLS on its own address.
func TestTURNOpenSockets(t *testing.T) {
	f := &turnFlags{listen: "127.0.0.1:0", tlsListen: "127.0.0.1:0", udpSockets: 2}
	f.tls = &tls.Config{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return nil, errors.New("unused") }}
	pcs, ls, err := f.openSockets()
	if err != nil {
		t.Fatal(err)
	}
	defer closeAll(pcs, ls)
	if len(pcs) != 2 || len(ls) != 2 {
		t.Fatalf("%d UDP sockets and %d listeners, want 2 and 2 (TCP, TLS)", len(pcs), len(ls))
	}
	udpPort := pcs[0].LocalAddr().(*net.UDPAddr).Port
	if pcs[1].LocalAddr().(*net.UDPAddr).Port != udpPort || ls[0].Addr().(*net.TCPAddr).Port != udpPort {
		t.Errorf("UDP %v, %v and TCP %v: want one port", pcs[0].LocalAddr(), pcs[1].LocalAddr(), ls[0].Addr())
	}
	if ls[1].Addr().(*net.TCPAddr).Port == udpPort {
		t.Errorf("TLS on the TURN port %d", udpPort)
	}

	// A TCP port already taken is an error (port 0 would try another).
	f = &turnFlags{listen: ls[0].Addr().String(), udpSockets: 1}
	if _, _, err := f.openSockets(); err == nil {
		t.Fatal("openSockets on a taken TCP port succeeded")
	}
}

// TestTURNConnectionFlags checks the TCP connection limits: defaults, flags
// and their environment variables, and that turn.New refuses bad values.
func TestTURNConnectionFlags(t *testing.T) {
	t.Setenv("MEETING_TURN_SECRET", "s")
	f, err := parseTURN(t, "--relay-ip", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	if f.cfg.TCPAuthTimeout != turn.DefaultTCPAuthTimeout || f.cfg.TCPIdleTimeout != turn.DefaultTCPIdleTimeout || f.cfg.TCPConnsPerSource != turn.DefaultTCPConnsPerSource {
		t.Errorf("defaults: %v, %v, %d", f.cfg.TCPAuthTimeout, f.cfg.TCPIdleTimeout, f.cfg.TCPConnsPerSource)
	}
	f, err = parseTURN(t, "--relay-ip", "127.0.0.1", "--tcp-auth-timeout", "2s", "--tcp-idle-timeout", "90s", "--tcp-conns-per-source", "0")
	if err != nil {
		t.Fatal(err)
	}
	if f.cfg.TCPAuthTimeout != 2*time.Second || f.cfg.TCPIdleTimeout != 90*time.Second || f.cfg.TCPConnsPerSource != 0 {
		t.Errorf("flags: %v, %v, %d", f.cfg.TCPAuthTimeout, f.cfg.TCPIdleTimeout, f.cfg.TCPConnsPerSource)
	}
	t.Setenv("MEETING_TCP_CONNS_PER_SOURCE", "50")
	t.Setenv("MEETING_TCP_IDLE_TIMEOUT", "1m")
	f, err = parseTURN(t, "--relay-ip", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	if f.cfg.TCPConnsPerSource != 50 || f.cfg.TCPIdleTimeout != time.Minute {
		t.Errorf("from the environment: %d, %v", f.cfg.TCPConnsPerSource, f.cfg.TCPIdleTimeout)
	}
	t.Setenv("MEETING_TCP_CONNS_PER_SOURCE", "")
	t.Setenv("MEETING_TCP_IDLE_TIMEOUT", "")
	f, err = parseTURN(t, "--relay-ip", "127.0.0.1", "--tcp-auth-timeout", "-1s")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.cfg.Validate(); err == nil || !strings.Contains(err.Error(), "TCP timeouts") {
		t.Errorf("negative --tcp-auth-timeout: Validate = %v, want an error naming it", err)
	}
}

// TestUDPBufferFlags checks the UDP buffer sizes asked for: TURN's own
// default, smaller than the SFU's, in the turn role and standalone, and
// that a negative size is refused with the flag's name.
func TestUDPBufferFlags(t *testing.T) {
	t.Setenv("MEETING_TURN_SECRET", "s")
	t.Setenv("MEETING_UDP_BUFFER", "")
	f, err := parseTURN(t, "--relay-ip", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	if f.udpBuffer != turn.DefaultUDPBuffer || turn.DefaultUDPBuffer >= sockbuf.Default {
		t.Errorf("turn --udp-buffer default %d, want turn.DefaultUDPBuffer %d, under the SFU's %d", f.udpBuffer, turn.DefaultUDPBuffer, sockbuf.Default)
	}
	t.Setenv("MEETING_UDP_BUFFER", "1048576")
	if f, err = parseTURN(t, "--relay-ip", "127.0.0.1"); err != nil || f.udpBuffer != 1<<20 {
		t.Errorf("MEETING_UDP_BUFFER=1048576: %d, %v", f.udpBuffer, err)
	}
	t.Setenv("MEETING_UDP_BUFFER", "")
	if _, err := parseTURN(t, "--relay-ip", "127.0.0.1", "--udp-buffer", "-1"); err == nil || !strings.Contains(err.Error(), "--udp-buffer") {
		t.Errorf("turn --udp-buffer -1: %v, want an error naming it", err)
	}

	media := func(args ...string) (mediaConfig, error) {
		var c mediaConfig
		fs := newFlagSet("meeting", "", io.Discard, "")
		c.register(fs)
		if err := parseFlags(fs, args); err != nil {
			return c, err
		}
		return c, c.validate()
	}
	c, err := media()
	if err != nil {
		t.Fatal(err)
	}
	if c.udpBuffer != sockbuf.Default || c.turnUDPBuffer != turn.DefaultUDPBuffer {
		t.Errorf("standalone defaults: --udp-buffer %d, --turn-udp-buffer %d", c.udpBuffer, c.turnUDPBuffer)
	}
	if c, err = media("--turn-udp-buffer", "3000000"); err != nil || c.turnUDPBuffer != 3000000 || c.udpBuffer != sockbuf.Default {
		t.Errorf("--turn-udp-buffer 3000000: %+v, %v", c, err)
	}
	if _, err := media("--turn-udp-buffer", "-5"); err == nil || !strings.Contains(err.Error(), "--turn-udp-buffer") {
		t.Errorf("--turn-udp-buffer -5: %v, want an error naming it", err)
	}
}
