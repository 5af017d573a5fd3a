package rawudp

import (
	"net"
	"net/netip"
	"strconv"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Conn is a *net.UDPConn whose ReadFrom and WriteTo are raw syscalls. It is
// safe for concurrent use: reads are serialised with one another and writes
// with one another, as the socket's own lock serialises them in net.
//
// The syscall closures and socket addresses live in the struct, made once,
// and source addresses are reused while they repeat, so that a datagram read
// or written allocates nothing here.
type Conn struct {
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
	addrs  map[source]*net.UDPAddr // sources seen, never modified once handed out

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

// source is a datagram's source as recvfrom reports it.
type source struct {
	ap    netip.AddrPort
	scope uint32 // IPv6 scope (interface index), 0 if none
}

// maxCachedAddrs bounds the source addresses a socket remembers.
const maxCachedAddrs = 4096

// New wraps c when it is an IPv4 or IPv6 *net.UDPConn, and returns c itself
// otherwise. The result owns c: closing it closes c.
func New(c net.PacketConn) net.PacketConn {
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
	r := &Conn{UDPConn: u, rc: rc, family: family, addrs: map[source]*net.UDPAddr{}}
	r.readFn = r.recvfrom
	r.writeFn = r.sendto
	return r
}

func (c *Conn) recvfrom(fd uintptr) bool {
	c.rsalen = unix.SizeofSockaddrAny
	r, _, e := unix.RawSyscall6(unix.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(unsafe.SliceData(c.rbuf))), uintptr(len(c.rbuf)), 0,
		uintptr(unsafe.Pointer(&c.rsa)), uintptr(unsafe.Pointer(&c.rsalen)))
	switch e {
	case 0:
		c.rn, c.rerr = int(r), 0
		return true
	case unix.EAGAIN, unix.EINTR:
		return false // wait for readiness, try again
	default:
		c.rn, c.rerr = 0, e
		return true
	}
}

// ReadFrom reads one datagram into p. The address it returns is shared with
// earlier and later reads from the same source: callers must not modify it.
func (c *Conn) ReadFrom(p []byte) (int, net.Addr, error) {
	if len(p) == 0 {
		return c.UDPConn.ReadFrom(p)
	}
	c.rmu.Lock()
	defer c.rmu.Unlock()
	c.rbuf = p
	err := c.rc.Read(c.readFn)
	c.rbuf = nil
	if err != nil { // closed, or past the deadline: net's error, for os.IsTimeout and net.ErrClosed
		return 0, nil, &net.OpError{Op: "read", Net: "udp", Source: c.LocalAddr(), Err: err}
	}
	if c.rerr != 0 {
		return 0, nil, &net.OpError{Op: "read", Net: "udp", Source: c.LocalAddr(), Err: c.rerr}
	}
	return c.rn, c.source(), nil
}

// source returns the address recvfrom filled in, in the form net.UDPConn
// returns (4-byte IPv4 on an AF_INET socket, 16-byte on an AF_INET6 one),
// reusing the one handed out before for the same address.
func (c *Conn) source() *net.UDPAddr {
	var s source
	switch c.rsa.Addr.Family {
	case unix.AF_INET:
		sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(&c.rsa))
		s.ap = netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(netPort(&sa.Port)))
	case unix.AF_INET6:
		sa := (*unix.RawSockaddrInet6)(unsafe.Pointer(&c.rsa))
		s.ap = netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), uint16(netPort(&sa.Port)))
		s.scope = sa.Scope_id
	default:
		return &net.UDPAddr{}
	}
	if a, ok := c.addrs[s]; ok {
		return a
	}
	if len(c.addrs) >= maxCachedAddrs {
		clear(c.addrs)
	}
	a := &net.UDPAddr{IP: s.ap.Addr().AsSlice(), Port: int(s.ap.Port())}
	if s.scope != 0 {
		a.Zone = strconv.FormatUint(uint64(s.scope), 10)
	}
	c.addrs[s] = a
	return a
}

func (c *Conn) sendto(fd uintptr) bool {
	r, _, e := unix.RawSyscall6(unix.SYS_SENDTO, fd, uintptr(unsafe.Pointer(unsafe.SliceData(c.wbuf))), uintptr(len(c.wbuf)), 0,
		uintptr(c.wsa), c.wsalen)
	switch e {
	case 0:
		c.wn, c.werr = int(r), 0
		return true
	case unix.EAGAIN, unix.EINTR:
		return false // wait for readiness, try again
	default:
		c.wn, c.werr = 0, e
		return true
	}
}

// WriteTo sends p to addr. Anything but a non-empty datagram to a *net.UDPAddr
// of the socket's family (IPv4 as mapped on an IPv6 socket), with no zone,
// goes through net.UDPConn.WriteTo instead.
func (c *Conn) WriteTo(p []byte, addr net.Addr) (int, error) {
	ua, ok := addr.(*net.UDPAddr)
	if !ok || len(p) == 0 || ua.Zone != "" {
		return c.UDPConn.WriteTo(p, addr)
	}
	ip, ok := netip.AddrFromSlice(ua.IP)
	if !ok {
		return c.UDPConn.WriteTo(p, addr)
	}
	var v4 bool
	switch {
	case c.family == unix.AF_INET && ip.Unmap().Is4():
		v4 = true
	case c.family == unix.AF_INET6: // IPv4 as mapped on a dual-stack socket
	default:
		return c.UDPConn.WriteTo(p, addr)
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if v4 {
		c.wsa4 = unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: ip.Unmap().As4()}
		setNetPort(&c.wsa4.Port, ua.Port)
		c.wsa, c.wsalen = unsafe.Pointer(&c.wsa4), unix.SizeofSockaddrInet4
	} else {
		c.wsa6 = unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: ip.As16()}
		setNetPort(&c.wsa6.Port, ua.Port)
		c.wsa, c.wsalen = unsafe.Pointer(&c.wsa6), unix.SizeofSockaddrInet6
	}
	c.wbuf = p
	err := c.rc.Write(c.writeFn)
	c.wbuf = nil
	if err != nil { // closed, or past the deadline
		return 0, &net.OpError{Op: "write", Net: "udp", Source: c.LocalAddr(), Addr: addr, Err: err}
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
