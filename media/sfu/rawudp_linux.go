package sfu

import (
	"net"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// rawUDP is the SFU's ICE socket with sendto and recvfrom made as raw
// non-blocking syscalls; Go's poller is used only to wait for readiness.
//
// Forwarding is bursts of sendto, one per subscriber. Made the usual way,
// each marks the goroutine's P as in a syscall and, leaving it, wakes the
// runtime's sysmon thread whenever the process was idle before the burst,
// which then polls every 20µs for a millisecond: at a few hundred bursts a
// second that cost as much CPU as the forwarding itself. sendto and recvfrom
// on a non-blocking UDP socket never block, so they need none of it.
type rawUDP struct {
	*net.UDPConn
	rc syscall.RawConn
	v4 bool // an AF_INET socket; otherwise AF_INET6, IPv4 peers v4-mapped
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
	domain := -1
	cerr := rc.Control(func(fd uintptr) {
		domain, err = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_DOMAIN)
	})
	if cerr != nil || err != nil || (domain != unix.AF_INET && domain != unix.AF_INET6) {
		return c
	}
	return &rawUDP{UDPConn: u, rc: rc, v4: domain == unix.AF_INET}
}

// ReadFrom reads one datagram.
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
		case unix.EAGAIN, unix.EINTR:
			return false // wait for readiness, try again
		default:
			serr = e
			return true
		}
	})
	if err != nil { // closed, or past the deadline: keep net's error for os.IsTimeout
		return 0, nil, &net.OpError{Op: "read", Net: "udp", Source: c.LocalAddr(), Err: err}
	}
	if serr != 0 {
		return 0, nil, &net.OpError{Op: "read", Net: "udp", Source: c.LocalAddr(), Err: serr}
	}
	return n, sockaddrToUDP(&sa), nil
}

// WriteTo sends one datagram to addr, a *net.UDPAddr.
func (c *rawUDP) WriteTo(p []byte, addr net.Addr) (int, error) {
	ua, ok := addr.(*net.UDPAddr)
	if !ok || len(p) == 0 {
		return c.UDPConn.WriteTo(p, addr)
	}
	var (
		sa4   unix.RawSockaddrInet4
		sa6   unix.RawSockaddrInet6
		sa    unsafe.Pointer
		salen uintptr
	)
	if ip4 := ua.IP.To4(); ip4 != nil && c.v4 {
		sa4.Family = unix.AF_INET
		putPort(&sa4.Port, ua.Port)
		copy(sa4.Addr[:], ip4)
		sa, salen = unsafe.Pointer(&sa4), unix.SizeofSockaddrInet4
	} else if ip16 := ua.IP.To16(); ip16 != nil && !c.v4 {
		sa6.Family = unix.AF_INET6
		putPort(&sa6.Port, ua.Port)
		copy(sa6.Addr[:], ip16)
		sa, salen = unsafe.Pointer(&sa6), unix.SizeofSockaddrInet6
	} else {
		return c.UDPConn.WriteTo(p, addr)
	}
	var (
		n    int
		serr syscall.Errno
	)
	err := c.rc.Write(func(fd uintptr) bool {
		r, _, e := unix.RawSyscall6(unix.SYS_SENDTO, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)), 0,
			uintptr(sa), salen)
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
		return 0, &net.OpError{Op: "write", Net: "udp", Source: c.LocalAddr(), Addr: addr, Err: err}
	}
	if serr != 0 {
		return 0, &net.OpError{Op: "write", Net: "udp", Source: c.LocalAddr(), Addr: addr, Err: serr}
	}
	return n, nil
}

func putPort(dst *uint16, port int) {
	b := (*[2]byte)(unsafe.Pointer(dst))
	b[0], b[1] = byte(port>>8), byte(port)
}

func sockaddrToUDP(sa *unix.RawSockaddrAny) *net.UDPAddr {
	switch sa.Addr.Family {
	case unix.AF_INET:
		s := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		p := (*[2]byte)(unsafe.Pointer(&s.Port))
		return &net.UDPAddr{IP: net.IPv4(s.Addr[0], s.Addr[1], s.Addr[2], s.Addr[3]).To4(), Port: int(p[0])<<8 | int(p[1])}
	case unix.AF_INET6:
		s := (*unix.RawSockaddrInet6)(unsafe.Pointer(sa))
		p := (*[2]byte)(unsafe.Pointer(&s.Port))
		ip := make(net.IP, net.IPv6len)
		copy(ip, s.Addr[:])
		if ip4 := ip.To4(); ip4 != nil {
			ip = ip4
		}
		return &net.UDPAddr{IP: ip, Port: int(p[0])<<8 | int(p[1])}
	}
	return &net.UDPAddr{}
}
