package turn

import (
	"net"
	"net/netip"
	"testing"
)

func TestPeerPolicyDefault(t *testing.T) {
	p := NewPeerPolicy(nil)
	for _, tc := range []struct {
		ip   string
		want bool
	}{
		{"8.8.8.8", true},
		{"1.1.1.1", true},
		{"100.63.255.255", true},
		{"100.128.0.0", true},
		{"172.32.0.1", true},
		{"2001:4860:4860::8888", true},
		{"64:ff9b::808:808", true}, // NAT64 of 8.8.8.8
		{"2002:808:808::1", true},  // 6to4 of 8.8.8.8
		{"::ffff:8.8.8.8", true},   // mapped 8.8.8.8
		{"10.0.0.1", false},
		{"10.255.255.255", false},
		{"172.16.0.1", false},
		{"172.31.255.255", false},
		{"192.168.1.1", false},
		{"100.64.0.1", false},
		{"100.127.255.255", false},
		{"127.0.0.1", false},
		{"127.8.9.10", false},
		{"169.254.169.254", false},
		{"169.254.1.1", false},
		{"0.0.0.0", false},
		{"224.0.0.1", false},
		{"239.255.255.250", false},
		{"255.255.255.255", false},
		{"240.0.0.1", false},
		{"198.18.0.1", false},
		{"::", false},
		{"::1", false},
		{"fc00::1", false},
		{"fd00:ec2::254", false},
		{"fe80::1", false},
		{"fe80::1%eth0", false},
		{"ff02::1", false},
		{"::ffff:10.0.0.1", false},
		{"::ffff:127.0.0.1", false},
		{"::ffff:169.254.169.254", false},
		{"::ffff:192.168.0.1", false},
		{"64:ff9b::a00:1", false},    // NAT64 of 10.0.0.1
		{"64:ff9b::7f00:1", false},   // NAT64 of 127.0.0.1
		{"2002:a00:1::1", false},     // 6to4 of 10.0.0.1
		{"2002:a9fe:a9fe::1", false}, // 6to4 of 169.254.169.254
	} {
		if got := p.Allowed(netip.MustParseAddr(tc.ip)); got != tc.want {
			t.Errorf("Allowed(%s) = %v, want %v", tc.ip, got, tc.want)
		}
	}
	if p.Allowed(netip.Addr{}) {
		t.Error("the zero address is allowed")
	}
}

func TestPeerPolicyAllowList(t *testing.T) {
	p := NewPeerPolicy([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("10.1.2.3/16")})
	for _, tc := range []struct {
		ip   string
		want bool
	}{
		{"127.0.0.1", true},
		{"::ffff:127.0.0.1", true},
		{"10.1.0.1", true}, // the prefix is masked to 10.1.0.0/16
		{"10.2.0.1", false},
		{"::1", false},
		{"169.254.169.254", false},
		{"8.8.8.8", true},
	} {
		if got := p.Allowed(netip.MustParseAddr(tc.ip)); got != tc.want {
			t.Errorf("Allowed(%s) = %v, want %v", tc.ip, got, tc.want)
		}
	}
	// pion hands out net.IP in 16-byte form for IPv4.
	if !p.allowedIP(net.ParseIP("127.0.0.1")) || p.allowedIP(net.ParseIP("10.0.0.1")) || p.allowedIP(nil) {
		t.Error("allowedIP disagrees with Allowed")
	}
}

func TestPeerPolicyExactAddrs(t *testing.T) {
	sfu := netip.MustParseAddrPort("127.0.0.1:7882")
	p := NewPeerPolicy([]netip.Prefix{netip.MustParsePrefix("10.1.0.0/16")}, sfu, netip.AddrPort{})
	for _, tc := range []struct {
		peer string
		want bool
	}{
		{"127.0.0.1:7882", true},
		{"[::ffff:127.0.0.1]:7882", true}, // the same destination on a relay socket
		{"127.0.0.1:7883", false},
		{"127.0.0.2:7882", false},
		{"[::1]:7882", false},
		{"10.1.2.3:9", true},  // the prefix still applies
		{"10.2.0.1:9", false}, // and the default list
		{"8.8.8.8:53", true},
	} {
		if got := p.AllowedAddrPort(netip.MustParseAddrPort(tc.peer)); got != tc.want {
			t.Errorf("AllowedAddrPort(%s) = %v, want %v", tc.peer, got, tc.want)
		}
	}
	// The IP alone is not allowed; pion's IP-only decision admits it, as the
	// guard checks the port before pion sees a request.
	if p.Allowed(sfu.Addr()) {
		t.Error("Allowed(127.0.0.1): an exact address opened its whole IP")
	}
	if !p.allowedIP(net.ParseIP("127.0.0.1")) || p.allowedIP(net.ParseIP("127.0.0.2")) {
		t.Error("allowedIP does not admit exactly the IPs of allowed addresses")
	}
	if !p.hasAddrs() || NewPeerPolicy(nil).hasAddrs() {
		t.Error("hasAddrs wrong")
	}
}

// TestPeerPolicyIPv4Embeddings covers every IPv6 form that carries an IPv4
// address: refused when the IPv4 address is, and the obsolete
// IPv4-compatible and Teredo ranges refused whole.
func TestPeerPolicyIPv4Embeddings(t *testing.T) {
	def := NewPeerPolicy(nil)
	loop := NewPeerPolicy([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")})
	for _, tc := range []struct {
		ip        string
		want      bool // default policy
		wantLoop  bool // 127.0.0.0/8 allowed
		embedding string
	}{
		// IPv4-mapped (::ffff:0:0/96)
		{"::ffff:10.0.0.1", false, false, "mapped"},
		{"::ffff:127.0.0.1", false, true, "mapped"},
		{"::ffff:8.8.8.8", true, true, "mapped"},
		// IPv4-compatible (::/96), deprecated: refused whole
		{"::a00:1", false, false, "compatible"},
		{"::7f00:1", false, true, "compatible"},
		{"::a9fe:a9fe", false, false, "compatible"},
		{"::808:808", false, false, "compatible"},
		// IPv4-translated, SIIT (::ffff:0:0/96)
		{"::ffff:0:a00:1", false, false, "SIIT"},
		{"::ffff:0:7f00:1", false, true, "SIIT"},
		{"::ffff:0:a9fe:a9fe", false, false, "SIIT"},
		{"::ffff:0:808:808", true, true, "SIIT"},
		// NAT64 well-known prefix (64:ff9b::/96)
		{"64:ff9b::a00:1", false, false, "NAT64"},
		{"64:ff9b::7f00:1", false, true, "NAT64"},
		{"64:ff9b::a9fe:a9fe", false, false, "NAT64"},
		{"64:ff9b::808:808", true, true, "NAT64"},
		// local-use NAT64 (64:ff9b:1::/48): refused whole
		{"64:ff9b:1::808:808", false, false, "local NAT64"},
		{"64:ff9b:1:ffff::a00:1", false, false, "local NAT64"},
		// 6to4 (2002::/16)
		{"2002:a00:1::1", false, false, "6to4"},
		{"2002:7f00:1::1", false, true, "6to4"},
		{"2002:c0a8:101::1", false, false, "6to4"},
		{"2002:808:808::1", true, true, "6to4"},
		// Teredo (2001::/32): client address bit-inverted in the last 32 bits; refused whole
		{"2001:0:4136:e378:8000:63bf:f5ff:fffe", false, false, "Teredo"}, // client 10.0.0.1
		{"2001:0:4136:e378:8000:63bf:80ff:fffe", false, true, "Teredo"},  // client 127.0.0.1
		{"2001:0:4136:e378:8000:63bf:f7f7:f7f7", false, false, "Teredo"}, // client 8.8.8.8
		{"2001::", false, false, "Teredo"},
		{"2001:1::1", true, true, "not Teredo"},
		// ISATAP interface identifiers in any prefix
		{"2001:db8::5efe:a00:1", false, false, "ISATAP"},
		{"2001:db8::200:5efe:a00:1", false, false, "ISATAP"},
		{"2001:db8::5efe:7f00:1", false, true, "ISATAP"},
		{"2001:db8::5efe:808:808", true, true, "ISATAP"},
		// plain IPv6 stays allowed
		{"2001:4860:4860::8888", true, true, "none"},
		{"2a00:1450:4001::200e", true, true, "none"},
	} {
		ip := netip.MustParseAddr(tc.ip)
		if got := def.Allowed(ip); got != tc.want {
			t.Errorf("%s (%s): Allowed = %v, want %v", tc.ip, tc.embedding, got, tc.want)
		}
		if got := loop.Allowed(ip); got != tc.wantLoop {
			t.Errorf("%s (%s) with 127.0.0.0/8 allowed: Allowed = %v, want %v", tc.ip, tc.embedding, got, tc.wantLoop)
		}
	}
}

// TestPeerPolicyAllowedDoesNotAllocate: relay sockets ask the policy about
// datagrams from peers when exact addresses are allowed.
func TestPeerPolicyAllowedDoesNotAllocate(t *testing.T) {
	p := NewPeerPolicy([]netip.Prefix{netip.MustParsePrefix("10.1.0.0/16")}, netip.MustParseAddrPort("127.0.0.1:7882"))
	peers := []netip.AddrPort{
		netip.MustParseAddrPort("8.8.8.8:53"),
		netip.MustParseAddrPort("[::ffff:127.0.0.1]:7882"),
		netip.MustParseAddrPort("[2001:0:4136:e378:8000:63bf:f5ff:fffe]:9"),
		netip.MustParseAddrPort("[64:ff9b::a00:1]:9"),
	}
	if n := testing.AllocsPerRun(100, func() {
		for _, a := range peers {
			p.AllowedAddrPort(a)
		}
	}); n != 0 {
		t.Errorf("%v allocations per run, want 0", n)
	}
}
