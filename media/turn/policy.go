package turn

import (
	"net"
	"net/netip"
)

// deniedPeers are the ranges a client may not relay to unless allowed
// explicitly: they reach the server's own host, its private networks or cloud
// metadata services rather than a participant on the internet.
var deniedPeers = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),      // "this network", unspecified
	netip.MustParsePrefix("10.0.0.0/8"),     // RFC 1918
	netip.MustParsePrefix("100.64.0.0/10"),  // carrier-grade NAT
	netip.MustParsePrefix("127.0.0.0/8"),    // loopback
	netip.MustParsePrefix("169.254.0.0/16"), // link-local, cloud metadata 169.254.169.254
	netip.MustParsePrefix("172.16.0.0/12"),  // RFC 1918
	netip.MustParsePrefix("192.0.0.0/24"),   // IETF protocol assignments
	netip.MustParsePrefix("192.168.0.0/16"), // RFC 1918
	netip.MustParsePrefix("198.18.0.0/15"),  // benchmarking
	netip.MustParsePrefix("224.0.0.0/4"),    // multicast
	netip.MustParsePrefix("240.0.0.0/4"),    // reserved, broadcast
	netip.MustParsePrefix("::/128"),         // unspecified
	netip.MustParsePrefix("::1/128"),        // loopback
	netip.MustParsePrefix("100::/64"),       // discard
	netip.MustParsePrefix("64:ff9b:1::/48"), // local-use NAT64
	netip.MustParsePrefix("fc00::/7"),       // unique local, e.g. metadata fd00:ec2::254
	netip.MustParsePrefix("fe80::/10"),      // link-local
	netip.MustParsePrefix("fec0::/10"),      // site-local (deprecated)
	netip.MustParsePrefix("ff00::/8"),       // multicast
}

var (
	nat64     = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour = netip.MustParsePrefix("2002::/16")
)

// PeerPolicy decides to which peer addresses clients may relay. By default it
// refuses loopback, private, carrier-grade NAT, link-local (with cloud
// metadata), multicast, unspecified and reserved ranges, in IPv4, IPv6 and
// the IPv6 forms that embed an IPv4 address (mapped, NAT64, 6to4). Prefixes
// in the allow list are permitted even when a denied range contains them.
type PeerPolicy struct {
	allow []netip.Prefix
}

// NewPeerPolicy returns the default policy opened for the allowed prefixes.
func NewPeerPolicy(allow []netip.Prefix) PeerPolicy {
	p := PeerPolicy{allow: make([]netip.Prefix, 0, len(allow))}
	for _, a := range allow {
		p.allow = append(p.allow, a.Masked())
	}
	return p
}

// Allowed reports whether a client may relay to ip.
func (p PeerPolicy) Allowed(ip netip.Addr) bool {
	if !ip.IsValid() {
		return false
	}
	ip = ip.WithZone("")
	forms := []netip.Addr{ip}
	if ip.Is4In6() {
		forms = append(forms, ip.Unmap())
	}
	if v4, ok := embeddedIPv4(ip); ok {
		forms = append(forms, v4)
	}
	for _, f := range forms {
		for _, a := range p.allow {
			if a.Contains(f) {
				return true
			}
		}
	}
	for _, f := range forms {
		for _, d := range deniedPeers {
			if d.Contains(f) {
				return false
			}
		}
	}
	return true
}

// embeddedIPv4 returns the IPv4 address a NAT64 or 6to4 address carries.
func embeddedIPv4(ip netip.Addr) (netip.Addr, bool) {
	b := ip.As16()
	switch {
	case !ip.Is6() || ip.Is4In6():
		return netip.Addr{}, false
	case nat64.Contains(ip):
		return netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]}), true
	case sixToFour.Contains(ip):
		return netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]}), true
	}
	return netip.Addr{}, false
}

// allowedIP is Allowed for the net.IP values pion hands out.
func (p PeerPolicy) allowedIP(ip net.IP) bool {
	a, ok := netip.AddrFromSlice(ip)
	return ok && p.Allowed(a)
}
