package turn

import (
	"context"
	"fmt"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// udpBuffer is the socket buffer asked for each UDP listener, so that bursts
// wait in the kernel rather than being dropped.
const udpBuffer = 4 << 20

// listenUDP opens n UDP sockets on one port with SO_REUSEPORT; the kernel
// spreads clients over them by 5-tuple, and pion serves each on its own
// goroutine, so every core can relay.
func listenUDP(host, port string, n int) ([]net.PacketConn, error) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
		}); err != nil {
			return err
		}
		return serr
	}}
	var conns []net.PacketConn
	addr := net.JoinHostPort(host, port)
	for i := 0; i < n; i++ {
		c, err := lc.ListenPacket(context.Background(), "udp", addr)
		if err != nil {
			for _, c := range conns {
				_ = c.Close()
			}
			return nil, fmt.Errorf("open udp socket: %w", err)
		}
		if u, ok := c.(*net.UDPConn); ok {
			_ = u.SetReadBuffer(udpBuffer) // best effort: the kernel caps it
			_ = u.SetWriteBuffer(udpBuffer)
		}
		conns = append(conns, c)
		addr = c.LocalAddr().String() // the others join the port the first got
	}
	return conns, nil
}
