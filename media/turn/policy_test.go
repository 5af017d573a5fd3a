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
