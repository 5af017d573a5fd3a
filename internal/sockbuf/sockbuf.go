// Package sockbuf sizes the kernel buffers of UDP sockets and reads back
// what the kernel granted, so that a host whose limits (on Linux the
// net.core.rmem_max and wmem_max sysctls) cap the size asked for can be
// told so instead of dropping bursts in silence.
package sockbuf

import (
	"fmt"
	"log/slog"
	"net"
)

// Default is the buffer size the SFU's socket asks for, each way: about
// 2,000 full-size datagrams, 130 ms of a 10 × 10 call's forwarding. TURN's
// sockets ask for less (turn.DefaultUDPBuffer).
const Default = 4 << 20

// Sizes are a socket's buffer sizes in bytes, as comparable to the size
// asked for (Linux reports twice the usable size; halved here).
type Sizes struct {
	Read, Write int
}

// Set asks for want bytes of receive and send buffer on c and returns what
// the kernel granted. want <= 0 leaves the kernel's defaults.
func Set(c net.PacketConn, want int) (Sizes, error) {
	u, ok := c.(interface {
		SetReadBuffer(int) error
		SetWriteBuffer(int) error
	})
	if !ok {
		return Sizes{}, fmt.Errorf("socket buffers: %T is not a UDP socket", c)
	}
	if want > 0 {
		if err := u.SetReadBuffer(want); err != nil {
			return Sizes{}, fmt.Errorf("socket receive buffer: %w", err)
		}
		if err := u.SetWriteBuffer(want); err != nil {
			return Sizes{}, fmt.Errorf("socket send buffer: %w", err)
		}
	}
	return get(c)
}

// SetAndLog sets the buffers of conns as Set does and logs the sizes
// granted: a warning, with the way to raise the limit, when the kernel
// granted less than want.
func SetAndLog(log *slog.Logger, what string, want int, conns ...net.PacketConn) {
	for _, c := range conns {
		got, err := Set(c, want)
		if err != nil {
			log.Warn("UDP socket buffers not set", "socket", what, "addr", c.LocalAddr().String(), "err", err)
			continue
		}
		if want > 0 && (got.Read < want || got.Write < want) {
			log.Warn("UDP socket buffers capped by the kernel: bursts beyond them are dropped; raise net.core.rmem_max and net.core.wmem_max (README, Media)",
				"socket", what, "addr", c.LocalAddr().String(), "want_bytes", want, "rcvbuf_bytes", got.Read, "sndbuf_bytes", got.Write)
			continue
		}
		log.Info("UDP socket buffers", "socket", what, "addr", c.LocalAddr().String(), "rcvbuf_bytes", got.Read, "sndbuf_bytes", got.Write)
	}
}
