package turn

import (
	"net"
	"net/netip"
	"slices"
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
	netip.MustParsePrefix("::/96"),          // IPv4-compatible, deprecated (RFC 4291 section 2.5.5.1), no route
	netip.MustParsePrefix("2001::/32"),      // Teredo (RFC 4380): tunnels to an obfuscated IPv4 address; service retired
	netip.MustParsePrefix("100::/64"),       // discard
	netip.MustParsePrefix("64:ff9b:1::/48"), // local-use NAT64
	netip.MustParsePrefix("fc00::/7"),       // unique local, e.g. metadata fd00:ec2::254
	netip.MustParsePrefix("fe80::/10"),      // link-local
	netip.MustParsePrefix("fec0::/10"),      // site-local (deprecated)
	netip.MustParsePrefix("ff00::/8"),       // multicast
}

// IPv6 ranges whose addresses carry an IPv4 address; see embeddedIPv4.
var (
	nat64      = netip.MustParsePrefix("64:ff9b::/96")    // NAT64 well-known prefix (RFC 6052)
	sixToFour  = netip.MustParsePrefix("2002::/16")       // 6to4 (RFC 3056)
	teredo     = netip.MustParsePrefix("2001::/32")       // Teredo (RFC 4380)
	ipv4Compat = netip.MustParsePrefix("::/96")           // IPv4-compatible (RFC 4291)
	siit       = netip.MustParsePrefix("::ffff:0:0:0/96") // IPv4-translated, SIIT (RFC 2765)
)

// PeerPolicy decides to which peer addresses clients may relay. By default it
// refuses loopback, private, carrier-grade NAT, link-local (with cloud
// metadata), multicast, unspecified and reserved ranges, in IPv4, IPv6 and
// the IPv6 forms that embed an IPv4 address (mapped, NAT64, 6to4,
// IPv4-translated, ISATAP), and the whole of the obsolete IPv4-compatible
// and Teredo ranges. Prefixes
// in the allow list are permitted even when a denied range contains them,
// and so are the exact peer addresses (IP and port) in the address list:
// only those, not other ports of their IP.
type PeerPolicy struct {
	allow []netip.Prefix
	addrs []netip.AddrPort // unmapped, without zone
}

// NewPeerPolicy returns the default policy opened for the allowed prefixes
// and the allowed peer addresses.
func NewPeerPolicy(allow []netip.Prefix, addrs ...netip.AddrPort) PeerPolicy {
	p := PeerPolicy{allow: make([]netip.Prefix, 0, len(allow))}
	for _, a := range allow {
		p.allow = append(p.allow, a.Masked())
	}
	for _, a := range addrs {
		if a.IsValid() {
			p.addrs = append(p.addrs, exactForm(a))
		}
	}
	return p
}

// exactForm is how an exact peer address is compared: an IPv4-mapped IPv6
// address is its IPv4 address (the same destination on a relay socket).
func exactForm(a netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(a.Addr().WithZone("").Unmap(), a.Port())
}

// AllowedAddrPort reports whether a client may relay to peer: its IP is
// allowed, or peer is one of the exact allowed addresses.
func (p PeerPolicy) AllowedAddrPort(peer netip.AddrPort) bool {
	return p.Allowed(peer.Addr()) || (len(p.addrs) > 0 && slices.Contains(p.addrs, exactForm(peer)))
}

// hasAddrs reports whether exact addresses are allowed. TURN permissions
// are per IP (RFC 5766 section 8), so pion, once it holds one for an exact
// address's IP, would relay to every port of that IP: the guard then checks
// Send indications, and relay sockets datagrams from peers, for the port.
func (p PeerPolicy) hasAddrs() bool { return len(p.addrs) > 0 }

// Allowed reports whether a client may relay to ip. An IPv6 address that
// carries an IPv4 address (see embeddedIPv4) is judged by both: it is
// denied when either is, unless the allow list contains either. It does
// not allocate: the relay sockets call it for datagrams from peers.
func (p PeerPolicy) Allowed(ip netip.Addr) bool {
	if !ip.IsValid() {
		return false
	}
	ip = ip.WithZone("")
	var buf [3]netip.Addr
	forms := append(buf[:0], ip)
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

// embeddedIPv4 returns the IPv4 address an IPv6 address carries: the last
// 32 bits of NAT64 (64:ff9b::/96), IPv4-compatible (::/96) and
// IPv4-translated (::ffff:0:0:0/96) addresses, bits 16-47 of 6to4
// (2002::/16), the bit-inverted last 32 bits of Teredo (2001::/32, the
// client's address), and the last 32 bits of an ISATAP interface
// identifier (…:0:5efe:a.b.c.d or …:200:5efe:a.b.c.d, in any prefix).
// IPv4-mapped addresses are unmapped by the caller. Other translations
// (network-specific NAT64 prefixes, 6rd) cannot be told from the address.
func embeddedIPv4(ip netip.Addr) (netip.Addr, bool) {
	b := ip.As16()
	switch {
	case !ip.Is6() || ip.Is4In6():
		return netip.Addr{}, false
	case nat64.Contains(ip), ipv4Compat.Contains(ip), siit.Contains(ip):
		return netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]}), true
	case sixToFour.Contains(ip):
		return netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]}), true
	case teredo.Contains(ip):
		return netip.AddrFrom4([4]byte{^b[12], ^b[13], ^b[14], ^b[15]}), true
	case b[8]&^0x02 == 0 && b[9] == 0 && b[10] == 0x5e && b[11] == 0xfe: // ISATAP, either u/l bit
		return netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]}), true
	}
	return netip.Addr{}, false
}

// allowedIP is pion's permission decision, which sees the peer's IP only:
// Allowed, or the IP of an exact allowed address, whose port the guard has
// checked before pion sees the request.
func (p PeerPolicy) allowedIP(ip net.IP) bool {
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return false
	}
	if p.Allowed(a) {
		return true
	}
	a = a.WithZone("").Unmap()
	for _, e := range p.addrs {
		if e.Addr() == a {
			return true
		}
	}
	return false
}
