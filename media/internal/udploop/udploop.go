// Package udploop serves UDP sockets from an event loop, as coturn's relay
// threads do: one goroutine serves every socket it was given through an
// epoll instance of its own, reads each readable socket with raw
// non-blocking recvmmsg (up to 32 datagrams a call), and hands each
// datagram to the socket's Handler on that goroutine. When nothing is
// readable it waits: parked until the epoll
// instance is readable, through Go's poller, so that waiting holds no
// thread; or, while it is busy, in epoll_wait on a thread of its own (see
// pace). A Handler that
// relays (TURN ChannelData to a relay socket, a peer's datagram back to the
// client) sends at once with a raw sendto. Whatever that makes readable on
// the loop's other sockets (a relay socket on loopback, a second hop) is
// served in the same turn: a burst wakes one goroutine, not one per socket.
// Datagrams the Handler leaves go to the Conn's ReadFrom, for code that owns
// the socket in the usual way (pion's read loops).
//
// The loop is a Linux optimisation (epoll). Elsewhere, and for a
// PacketConn that is not a UDP socket, Adopt returns a Conn whose ReadFrom
// reads the socket itself and calls the Handler on the reading goroutine.
package udploop

import (
	"net"
	"net/netip"
)

// Handler is given each datagram read from a Conn, with its source (IPv4
// unmapped). It reports true when it has dealt with the datagram, false to
// pass it to ReadFrom. b is only valid during the call. All datagrams of one
// Conn are handled on one goroutine, one at a time.
type Handler func(b []byte, from netip.AddrPort) bool

func leaveAll([]byte, netip.AddrPort) bool { return false }

// Conn is a UDP socket served by a Loop.
type Conn interface {
	net.PacketConn
	// WriteToAddrPort sends b to addr without waiting: when the socket's
	// send buffer is full the datagram is dropped and an error returned.
	// It is what Handlers use; WriteTo waits for room instead.
	WriteToAddrPort(b []byte, addr netip.AddrPort) (int, error)
}

// AddrPort is a *net.UDPAddr's address and port with IPv4 unmapped, as
// Handlers are given sources; false for any other net.Addr.
func AddrPort(a net.Addr) (netip.AddrPort, bool) {
	ua, ok := a.(*net.UDPAddr)
	if !ok {
		return netip.AddrPort{}, false
	}
	ap := ua.AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), true
}

// goConn serves a socket without a loop: ReadFrom reads it and calls the
// Handler on the caller's goroutine.
type goConn struct {
	net.PacketConn
	handle Handler
}

func (c *goConn) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		n, addr, err := c.PacketConn.ReadFrom(p)
		if err != nil {
			return n, addr, err
		}
		if ap, ok := AddrPort(addr); ok && c.handle(p[:n], ap) {
			continue
		}
		return n, addr, nil
	}
}

func (c *goConn) WriteToAddrPort(b []byte, addr netip.AddrPort) (int, error) {
	return c.PacketConn.WriteTo(b, net.UDPAddrFromAddrPort(addr))
}
