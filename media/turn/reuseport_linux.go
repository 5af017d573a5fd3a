package turn

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

// ListenUDP opens n UDP sockets on addr (host:port; port 0 picks one, which
// all n share) with SO_REUSEPORT, for Config.PacketConns; n <= 0 opens one
// per CPU. The kernel spreads clients over them by 5-tuple and the Server
// serves each on its own goroutine, so every core can relay. Each asks for
// DefaultUDPBuffer bytes of socket buffer each way, as far as the kernel
// allows. Outside Linux it opens one socket whatever n is.
func ListenUDP(addr string, n int) ([]net.PacketConn, error) {
	if n <= 0 {
		n = runtime.NumCPU()
	}
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
	for i := 0; i < n; i++ {
		c, err := lc.ListenPacket(context.Background(), "udp", addr)
		if err != nil {
			for _, c := range conns {
				_ = c.Close()
			}
			return nil, fmt.Errorf("open udp socket on %s: %w", addr, err)
		}
		if u, ok := c.(*net.UDPConn); ok {
			_ = u.SetReadBuffer(DefaultUDPBuffer) // best effort: the kernel caps it
			_ = u.SetWriteBuffer(DefaultUDPBuffer)
		}
		conns = append(conns, c)
		addr = c.LocalAddr().String() // the others join the port the first got
	}
	return conns, nil
}
