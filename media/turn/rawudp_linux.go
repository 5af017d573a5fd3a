package turn

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
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
//
// The syscall closures and socket addresses live in the struct, made once,
// and source addresses are reused while they repeat, so that relaying a
// datagram allocates nothing here.
type rawUDP struct {
	*net.UDPConn
	rc     syscall.RawConn
	family int // AF_INET or AF_INET6, the socket's domain

	rmu    sync.Mutex // one ReadFrom at a time; guards the fields below
	rbuf   []byte
	rn     int
	rerr   syscall.Errno
	rsa    unix.RawSockaddrAny
	rsalen uint32
	readFn func(fd uintptr) bool
	addrs  map[netip.AddrPort]*net.UDPAddr // sources seen, never modified once handed out

	wmu     sync.Mutex // one WriteTo at a time; guards the fields below
	wbuf    []byte
	wn      int
	werr    syscall.Errno
	wsa4    unix.RawSockaddrInet4
	wsa6    unix.RawSockaddrInet6
	wsa     unsafe.Pointer
	wsalen  uintptr
	writeFn func(fd uintptr) bool
}

// maxCachedAddrs bounds the source addresses a socket remembers.
const maxCachedAddrs = 4096

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
	r := &rawUDP{UDPConn: u, rc: rc, family: family, addrs: map[netip.AddrPort]*net.UDPAddr{}}
	r.readFn = r.recvfrom
	r.writeFn = r.sendto
	return r
}

func (c *rawUDP) recvfrom(fd uintptr) bool {
	c.rsalen = unix.SizeofSockaddrAny
	r, _, e := unix.RawSyscall6(unix.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(unsafe.SliceData(c.rbuf))), uintptr(len(c.rbuf)), 0,
		uintptr(unsafe.Pointer(&c.rsa)), uintptr(unsafe.Pointer(&c.rsalen)))
	switch e {
	case 0:
		c.rn, c.rerr = int(r), 0
		return true
	case unix.EAGAIN, unix.EINTR:
		return false
	default:
		c.rn, c.rerr = 0, e
		return true
	}
}

func (c *rawUDP) ReadFrom(p []byte) (int, net.Addr, error) {
	if len(p) == 0 {
		return c.UDPConn.ReadFrom(p)
	}
	c.rmu.Lock()
	defer c.rmu.Unlock()
	c.rbuf = p
	err := c.rc.Read(c.readFn)
	c.rbuf = nil
	if err != nil {
		return 0, nil, err
	}
	if c.rerr != 0 {
		return 0, nil, &net.OpError{Op: "read", Net: "udp", Source: c.LocalAddr(), Err: c.rerr}
	}
	return c.rn, c.source(), nil
}

// source returns the address recvfrom filled in, reusing the one handed out
// before for the same address.
func (c *rawUDP) source() *net.UDPAddr {
	var ap netip.AddrPort
	switch c.rsa.Addr.Family {
	case unix.AF_INET:
		s := (*unix.RawSockaddrInet4)(unsafe.Pointer(&c.rsa))
		ap = netip.AddrPortFrom(netip.AddrFrom4(s.Addr), uint16(netPort(&s.Port)))
	case unix.AF_INET6:
		s := (*unix.RawSockaddrInet6)(unsafe.Pointer(&c.rsa))
		ap = netip.AddrPortFrom(netip.AddrFrom16(s.Addr), uint16(netPort(&s.Port)))
	default:
		return &net.UDPAddr{}
	}
	if a, ok := c.addrs[ap]; ok {
		return a
	}
	if len(c.addrs) >= maxCachedAddrs {
		clear(c.addrs)
	}
	a := net.UDPAddrFromAddrPort(ap)
	if ap.Addr().Is4() {
		a.IP = a.IP.To16() // the form net.UDPConn returns
	}
	c.addrs[ap] = a
	return a
}

func (c *rawUDP) sendto(fd uintptr) bool {
	r, _, e := unix.RawSyscall6(unix.SYS_SENDTO, fd, uintptr(unsafe.Pointer(unsafe.SliceData(c.wbuf))), uintptr(len(c.wbuf)), 0,
		uintptr(c.wsa), c.wsalen)
	switch e {
	case 0:
		c.wn, c.werr = int(r), 0
		return true
	case unix.EAGAIN, unix.EINTR:
		return false
	default:
		c.wn, c.werr = 0, e
		return true
	}
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
	c.wmu.Lock()
	defer c.wmu.Unlock()
	switch {
	case c.family == unix.AF_INET && ip.Unmap().Is4():
		c.wsa4 = unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: ip.Unmap().As4()}
		setNetPort(&c.wsa4.Port, ua.Port)
		c.wsa, c.wsalen = unsafe.Pointer(&c.wsa4), unix.SizeofSockaddrInet4
	case c.family == unix.AF_INET6 && ip.Zone() == "" && ua.Zone == "":
		c.wsa6 = unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: ip.As16()} // IPv4 as mapped on a dual-stack socket
		setNetPort(&c.wsa6.Port, ua.Port)
		c.wsa, c.wsalen = unsafe.Pointer(&c.wsa6), unix.SizeofSockaddrInet6
	default:
		return c.UDPConn.WriteTo(p, addr)
	}
	c.wbuf = p
	err := c.rc.Write(c.writeFn)
	c.wbuf = nil
	if err != nil {
		return 0, err
	}
	if c.werr != 0 {
		return 0, &net.OpError{Op: "write", Net: "udp", Source: c.LocalAddr(), Addr: addr, Err: c.werr}
	}
	return c.wn, nil
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
