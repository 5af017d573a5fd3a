package sockbuf

import (
	"fmt"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

func get(c net.PacketConn) (Sizes, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return Sizes{}, fmt.Errorf("socket buffers: %T has no file descriptor", c)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return Sizes{}, fmt.Errorf("socket buffers: %w", err)
	}
	var s Sizes
	var rerr, werr error
	if err := rc.Control(func(fd uintptr) {
		s.Read, rerr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF)
		s.Write, werr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF)
	}); err != nil {
		return Sizes{}, fmt.Errorf("socket buffers: %w", err)
	}
	if rerr != nil || werr != nil {
		return Sizes{}, fmt.Errorf("socket buffers: getsockopt: %v %v", rerr, werr)
	}
	// The kernel doubles what it grants, for its own bookkeeping.
	return Sizes{Read: s.Read / 2, Write: s.Write / 2}, nil
}
