//go:build !linux

package turn

import (
	"fmt"
	"net"
)

// ListenUDP opens one UDP socket on addr, for Config.PacketConns, whatever
// n is: SO_REUSEPORT load spreading is Linux only.
func ListenUDP(addr string, _ int) ([]net.PacketConn, error) {
	c, err := net.ListenPacket("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("open udp socket on %s: %w", addr, err)
	}
	return []net.PacketConn{c}, nil
}
