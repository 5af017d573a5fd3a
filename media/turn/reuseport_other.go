//go:build !linux

package turn

import (
	"fmt"
	"net"
)

// listenUDP opens one UDP socket: SO_REUSEPORT load spreading is Linux only.
func listenUDP(host, port string, _ int) ([]net.PacketConn, error) {
	c, err := net.ListenPacket("udp", net.JoinHostPort(host, port))
	if err != nil {
		return nil, fmt.Errorf("listen udp: %w", err)
	}
	return []net.PacketConn{c}, nil
}
