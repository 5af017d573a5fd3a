//go:build !linux

package udploop

import "net"

// Loop serves sockets without an event loop outside Linux: ReadFrom reads
// the socket and calls the Handler on the reading goroutine.
type Loop struct{}

// New returns a Loop.
func New() (*Loop, error) { return &Loop{}, nil }

// Close does nothing: the Conns are closed by whoever holds them.
func (l *Loop) Close() error { return nil }

// Adopt serves pc, calling h from its ReadFrom; a nil h leaves every
// datagram to ReadFrom.
func (l *Loop) Adopt(pc net.PacketConn, h Handler) (Conn, error) {
	if h == nil {
		h = leaveAll
	}
	return &goConn{PacketConn: pc, handle: h}, nil
}
