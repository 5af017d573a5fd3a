package turn

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// rawUDP reads and writes a UDP socket with raw non-blocking syscalls, using
// Go's poller only to wait for readiness. A relay makes two short syscalls
// per datagram; made the usual way, each marks the goroutine's P as in a
// syscall, and with many relay goroutines runnable the scheduler hands the P
// to another thread, which costs context switches that dominate the relay's
// CPU at tens of thousands of datagrams a second. recvfrom and sendto on a
// non-blocking UDP socket never block, so they need no such hand-off.
type rawUDP struct {
	*net.UDPConn
	rc     syscall.RawConn
	family int // AF_INET or AF_INET6, the socket's domain
}

// newRawUDP wraps c, or returns c itself when it is no *net.UDPConn.
func newRawUDP(c net.PacketConn) net.PacketConn {
	u, ok := c.(*net.UDPConn)
	if !ok {
		return c
	}
	rc, err := u.SyscallConn()
	if err != nil {
		return c
	}
	family, serr := 0, error(nil)
	if err := rc.Control(func(fd uintptr) {
		family, serr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_DOMAIN)
	}); err != nil || serr != nil || (family != unix.AF_INET && family != unix.AF_INET6) {
		return c
	}
	return &rawUDP{UDPConn: u, rc: rc, family: family}
}

func (c *rawUDP) ReadFrom(p []byte) (int, net.Addr, error) {
	if len(p) == 0 {
		return c.UDPConn.ReadFrom(p)
	}
	var (
		n    int
		sa   unix.RawSockaddrAny
		serr syscall.Errno
	)
	err := c.rc.Read(func(fd uintptr) bool {
		salen := uint32(unix.SizeofSockaddrAny)
		r, _, e := unix.RawSyscall6(unix.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)), 0,
			uintptr(unsafe.Pointer(&sa)), uintptr(unsafe.Pointer(&salen)))
		switch e {
		case 0:
			n = int(r)
			return true
		case unix.EAGAIN:
			return false
		case unix.EINTR:
			return false
		default:
			serr = e
			return true
		}
	})
	if err != nil {
		return 0, nil, err
	}
	if serr != 0 {
		return 0, nil, &net.OpError{Op: "read", Net: "udp", Source: c.LocalAddr(), Err: serr}
	}
	return n, sockaddrUDP(&sa), nil
}

func (c *rawUDP) WriteTo(p []byte, addr net.Addr) (int, error) {
	ua, ok := addr.(*net.UDPAddr)
	if !ok {
		return c.UDPConn.WriteTo(p, addr)
	}
	ip, ok := netip.AddrFromSlice(ua.IP)
	if !ok {
		return 0, fmt.Errorf("write to %v: %w", addr, errors.ErrUnsupported)
	}
	var (
		sa    unsafe.Pointer
		salen uintptr
		sa4   unix.RawSockaddrInet4
		sa6   unix.RawSockaddrInet6
	)
	switch {
	case c.family == unix.AF_INET && ip.Unmap().Is4():
		sa4.Family = unix.AF_INET
		setNetPort(&sa4.Port, ua.Port)
		sa4.Addr = ip.Unmap().As4()
		sa, salen = unsafe.Pointer(&sa4), unix.SizeofSockaddrInet4
	case c.family == unix.AF_INET6 && ip.Zone() == "" && ua.Zone == "":
		sa6.Family = unix.AF_INET6
		setNetPort(&sa6.Port, ua.Port)
		sa6.Addr = ip.As16() // IPv4 as mapped address on a dual-stack socket
		sa, salen = unsafe.Pointer(&sa6), unix.SizeofSockaddrInet6
	default:
		return c.UDPConn.WriteTo(p, addr)
	}
	var (
		n    int
		serr syscall.Errno
	)
	err := c.rc.Write(func(fd uintptr) bool {
		r, _, e := unix.RawSyscall6(unix.SYS_SENDTO, fd, uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)), 0, uintptr(sa), salen)
		switch e {
		case 0:
			n = int(r)
			return true
		case unix.EAGAIN, unix.EINTR:
			return false
		default:
			serr = e
			return true
		}
	})
	if err != nil {
		return 0, err
	}
	if serr != 0 {
		return 0, &net.OpError{Op: "write", Net: "udp", Source: c.LocalAddr(), Addr: addr, Err: serr}
	}
	return n, nil
}

// setNetPort stores a port in network byte order.
func setNetPort(p *uint16, port int) {
	b := (*[2]byte)(unsafe.Pointer(p))
	b[0], b[1] = byte(port>>8), byte(port)
}

// netPort reads a port stored in network byte order.
func netPort(p *uint16) int {
	b := (*[2]byte)(unsafe.Pointer(p))
	return int(b[0])<<8 | int(b[1])
}

// sockaddrUDP converts what recvfrom filled in.
func sockaddrUDP(sa *unix.RawSockaddrAny) *net.UDPAddr {
	switch sa.Addr.Family {
	case unix.AF_INET:
		s := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		return &net.UDPAddr{IP: net.IPv4(s.Addr[0], s.Addr[1], s.Addr[2], s.Addr[3]), Port: netPort(&s.Port)}
	case unix.AF_INET6:
		s := (*unix.RawSockaddrInet6)(unsafe.Pointer(sa))
		ip := make(net.IP, net.IPv6len)
		copy(ip, s.Addr[:])
		return &net.UDPAddr{IP: ip, Port: netPort(&s.Port)}
	}
	return &net.UDPAddr{}
}
