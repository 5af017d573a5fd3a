package udploop

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// maxBatch is how many datagrams one socket may give the loop before the
// loop looks at the others (the socket stays readable, and epoll, level
// triggered, reports it again).
const maxBatch = 32

// queueLen is how many datagrams wait for ReadFrom before more are dropped,
// as a socket's receive buffer drops them when full.
const queueLen = 256

// maxDatagram is the largest datagram read: the IPv4 UDP maximum.
const maxDatagram = 65535

// Loop is one event loop goroutine and the sockets it serves.
//
// The loop waits for its epoll instance through Go's poller (an epoll
// instance is readable while one of its sockets is), so that waiting parks
// a goroutine rather than holding a thread in a syscall; epoll_wait itself is
// only ever called not to wait.
type Loop struct {
	epfd    int      // the epoll instance, owned by file
	file    *os.File // epfd in Go's poller
	closing atomic.Bool
	done    chan struct{}

	mu     sync.RWMutex
	closed bool // under mu: epfd is closed or about to be
	conns  map[int32]*rawConn

	// Only the loop goroutine uses these.
	events []unix.EpollEvent
	buf    []byte
	rsa    unix.RawSockaddrAny
	err    error // why the loop stopped, if not closed
}

// New starts a loop.
func New() (*Loop, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	if err := unix.SetNonblock(epfd, true); err != nil {
		_ = unix.Close(epfd)
		return nil, fmt.Errorf("epoll instance non-blocking: %w", err)
	}
	file := os.NewFile(uintptr(epfd), "udploop")
	rc, err := file.SyscallConn()
	if err != nil {
		_ = file.Close()
		return nil, fmt.Errorf("epoll instance: %w", err)
	}
	l := &Loop{epfd: epfd, file: file, done: make(chan struct{}), conns: map[int32]*rawConn{},
		events: make([]unix.EpollEvent, 128), buf: make([]byte, maxDatagram)}
	go func() {
		defer close(l.done)
		if err := rc.Read(l.poll); err != nil && !l.closing.Load() {
			l.err = err
		}
	}()
	return l, nil
}

// Close stops the loop and closes the sockets it still serves.
func (l *Loop) Close() error {
	if l.closing.Swap(true) {
		return nil
	}
	l.mu.Lock()
	l.closed = true
	conns := make([]*rawConn, 0, len(l.conns))
	for _, c := range l.conns {
		conns = append(conns, c)
	}
	l.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
	err := l.file.Close() // wakes the loop if it waits; it stops
	<-l.done
	if err != nil {
		return fmt.Errorf("close epoll instance: %w", err)
	}
	if l.err != nil {
		return fmt.Errorf("event loop stopped: %w", l.err)
	}
	return nil
}

// poll serves whatever is ready and reports false, to be called again when
// the epoll instance is readable, once nothing is; true when the loop must
// stop.
func (l *Loop) poll(epfd uintptr) bool {
	for !l.closing.Load() {
		n, _, e := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, epfd, uintptr(unsafe.Pointer(&l.events[0])), uintptr(len(l.events)), 0, 0, 0)
		switch e {
		case 0:
		case unix.EINTR:
			continue
		default: // EBADF, EFAULT, EINVAL: a bug here
			l.err = fmt.Errorf("epoll_pwait: %w", e)
			return true
		}
		if n == 0 {
			return false
		}
		for _, ev := range l.events[:n] {
			l.mu.RLock()
			c := l.conns[ev.Fd]
			l.mu.RUnlock()
			if c != nil {
				l.drain(c)
			}
		}
	}
	return true
}

// drain reads up to maxBatch datagrams from c.
func (l *Loop) drain(c *rawConn) {
	if !c.acquire() {
		return
	}
	defer c.release()
	for range maxBatch {
		rsalen := uint32(unix.SizeofSockaddrAny)
		r, _, e := unix.RawSyscall6(unix.SYS_RECVFROM, uintptr(c.fd), uintptr(unsafe.Pointer(unsafe.SliceData(l.buf))), uintptr(len(l.buf)), 0,
			uintptr(unsafe.Pointer(&l.rsa)), uintptr(unsafe.Pointer(&rsalen)))
		switch e {
		case 0:
		case unix.EAGAIN:
			return
		default: // EINTR, or an error queued on the socket: read on
			continue
		}
		from, ok := sockaddrAddrPort(&l.rsa)
		if !ok {
			continue
		}
		b := l.buf[:r]
		if c.handle(b, from) {
			continue
		}
		c.deliver(b, from)
	}
}

func sockaddrAddrPort(rsa *unix.RawSockaddrAny) (netip.AddrPort, bool) {
	switch rsa.Addr.Family {
	case unix.AF_INET:
		sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(rsa))
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), netPort(&sa.Port)), true
	case unix.AF_INET6:
		sa := (*unix.RawSockaddrInet6)(unsafe.Pointer(rsa))
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), netPort(&sa.Port)), true
	}
	return netip.AddrPort{}, false
}

func netPort(p *uint16) uint16 {
	b := (*[2]byte)(unsafe.Pointer(p))
	return uint16(b[0])<<8 | uint16(b[1])
}

func setNetPort(p *uint16, port uint16) {
	b := (*[2]byte)(unsafe.Pointer(p))
	b[0], b[1] = byte(port>>8), byte(port)
}

// Adopt serves pc's socket from the loop and hands each datagram to h. It
// takes pc: the socket moves to a descriptor of its own, out of Go's
// poller, and pc is closed. A pc that is not a UDP socket is served without
// the loop (see package doc). A nil h leaves every datagram to ReadFrom.
func (l *Loop) Adopt(pc net.PacketConn, h Handler) (Conn, error) {
	if h == nil {
		h = leaveAll
	}
	if l.closing.Load() {
		return nil, fmt.Errorf("adopt %v: %w", pc.LocalAddr(), net.ErrClosed)
	}
	u, ok := pc.(*net.UDPConn)
	if !ok {
		return &goConn{PacketConn: pc, handle: h}, nil
	}
	rc, err := u.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("adopt %v: %w", pc.LocalAddr(), err)
	}
	fd, family := -1, 0
	var serr error
	if err := rc.Control(func(s uintptr) {
		family, serr = unix.GetsockoptInt(int(s), unix.SOL_SOCKET, unix.SO_DOMAIN)
		if serr == nil {
			fd, serr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0)
		}
	}); err != nil || serr != nil {
		return nil, fmt.Errorf("adopt %v: %w", pc.LocalAddr(), errors.Join(err, serr))
	}
	c := &rawConn{loop: l, fd: fd, family: family, local: pc.LocalAddr(), handle: h,
		queue: make(chan datagram, queueLen), done: make(chan struct{}), addrs: map[netip.AddrPort]*net.UDPAddr{}}
	// The descriptor shares the socket's open file, non-blocking as Go left it.
	if err := pc.Close(); err != nil {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("adopt %v: close Go's descriptor: %w", c.local, err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	err = net.ErrClosed
	if !l.closed {
		// Level-triggered: a socket left readable after a batch is reported again.
		err = unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd)})
	}
	if err != nil {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("adopt %v: epoll_ctl: %w", c.local, err)
	}
	l.conns[int32(fd)] = c
	return c, nil
}

// datagram is one the Handler left for ReadFrom.
type datagram struct {
	b    *[]byte // from bufs
	from *net.UDPAddr
}

// bufs holds the copies of datagrams waiting for ReadFrom.
var bufs = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

// maxCachedAddrs bounds the source addresses a socket remembers.
const maxCachedAddrs = 4096

// rawConn is a socket the loop serves.
type rawConn struct {
	loop   *Loop
	fd     int
	family int // AF_INET or AF_INET6
	local  net.Addr
	handle Handler

	queue chan datagram
	done  chan struct{}                   // closed by Close
	addrs map[netip.AddrPort]*net.UDPAddr // sources handed to ReadFrom; only the loop uses it

	// state counts the loop and the writers using fd (in steps of 2) and
	// has bit 0 set once Close was called; the descriptor is closed when
	// both are true, so that it is never used after it was closed (and its
	// number perhaps given to another socket).
	state     atomic.Int64
	closeOnce sync.Once
	fdOnce    sync.Once

	rdeadline atomic.Pointer[time.Time] // nil for none; applies to calls that start after it is set
	wdeadline atomic.Pointer[time.Time]
}

func (c *rawConn) acquire() bool {
	if c.state.Add(2)&1 != 0 {
		c.release()
		return false
	}
	return true
}

func (c *rawConn) release() {
	if c.state.Add(-2) == 1 {
		c.closeFD()
	}
}

func (c *rawConn) closeFD() { c.fdOnce.Do(func() { _ = unix.Close(c.fd) }) }

// deliver queues a copy of b for ReadFrom, or drops it when the queue is full.
func (c *rawConn) deliver(b []byte, from netip.AddrPort) {
	buf := bufs.Get().(*[]byte)
	*buf = append((*buf)[:0], b...)
	select {
	case c.queue <- datagram{b: buf, from: c.source(from)}:
	default:
		bufs.Put(buf)
	}
}

// source is from in the form net.UDPConn reports it (IPv4 as mapped on an
// IPv6 socket), the same *net.UDPAddr while a source repeats.
func (c *rawConn) source(from netip.AddrPort) *net.UDPAddr {
	if a, ok := c.addrs[from]; ok {
		return a
	}
	if len(c.addrs) >= maxCachedAddrs {
		clear(c.addrs)
	}
	a := net.UDPAddrFromAddrPort(c.family4or6(from))
	c.addrs[from] = a
	return a
}

// family4or6 gives a source in the form net.UDPConn reports it: IPv4 as
// mapped on an IPv6 socket.
func (c *rawConn) family4or6(ap netip.AddrPort) netip.AddrPort {
	if c.family == unix.AF_INET6 && ap.Addr().Is4() {
		return netip.AddrPortFrom(netip.AddrFrom16(ap.Addr().As16()), ap.Port())
	}
	return ap
}

// ReadFrom returns the next datagram the Handler left. The address it
// returns is shared with other reads from the same source: callers must not
// modify it.
func (c *rawConn) ReadFrom(p []byte) (int, net.Addr, error) {
	var timeout <-chan time.Time
	if d := c.rdeadline.Load(); d != nil {
		wait := time.Until(*d)
		if wait <= 0 {
			return 0, nil, c.opError("read", nil, os.ErrDeadlineExceeded)
		}
		t := time.NewTimer(wait)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case d := <-c.queue:
		n := copy(p, *d.b)
		bufs.Put(d.b)
		return n, d.from, nil
	case <-c.done:
		return 0, nil, c.opError("read", nil, net.ErrClosed)
	case <-timeout:
		return 0, nil, c.opError("read", nil, os.ErrDeadlineExceeded)
	}
}

func (c *rawConn) opError(op string, addr net.Addr, err error) error {
	return &net.OpError{Op: op, Net: "udp", Source: c.local, Addr: addr, Err: err}
}

// WriteTo sends p to addr, a *net.UDPAddr, waiting while the socket's send
// buffer is full.
func (c *rawConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	ap, ok := AddrPort(addr)
	if !ok {
		return 0, c.opError("write", addr, fmt.Errorf("not a UDP address: %T", addr))
	}
	for {
		n, err := c.sendto(p, ap)
		if err != unix.EAGAIN {
			if err != nil {
				return 0, c.opError("write", addr, err)
			}
			return n, nil
		}
		if d := c.wdeadline.Load(); d != nil && !time.Now().Before(*d) {
			return 0, c.opError("write", addr, os.ErrDeadlineExceeded)
		}
		// Wait for room: poll(2) is a blocking syscall, and the runtime
		// lends this goroutine's P to others meanwhile.
		fds := []unix.PollFd{{Fd: int32(c.fd), Events: unix.POLLOUT}}
		if !c.acquire() {
			return 0, c.opError("write", addr, net.ErrClosed)
		}
		_, perr := unix.Poll(fds, 100)
		c.release()
		if perr != nil && perr != unix.EINTR {
			return 0, c.opError("write", addr, perr)
		}
	}
}

func (c *rawConn) WriteToAddrPort(b []byte, addr netip.AddrPort) (int, error) {
	n, err := c.sendto(b, addr)
	if err != nil {
		return 0, c.opError("write", net.UDPAddrFromAddrPort(addr), err)
	}
	return n, nil
}

// sendto sends b to ap with a raw sendto, returning unix.EAGAIN when the
// socket's send buffer is full and net.ErrClosed once closed.
func (c *rawConn) sendto(b []byte, ap netip.AddrPort) (int, error) {
	if !c.acquire() {
		return 0, net.ErrClosed
	}
	defer c.release()
	var (
		sa4 unix.RawSockaddrInet4
		sa6 unix.RawSockaddrInet6
		sa  unsafe.Pointer
		n   uintptr
	)
	ip := ap.Addr().Unmap()
	switch {
	case c.family == unix.AF_INET && ip.Is4():
		sa4 = unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: ip.As4()}
		setNetPort(&sa4.Port, ap.Port())
		sa, n = unsafe.Pointer(&sa4), unix.SizeofSockaddrInet4
	case c.family == unix.AF_INET6 && ip.Zone() == "":
		sa6 = unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: ip.As16()} // IPv4 as mapped
		setNetPort(&sa6.Port, ap.Port())
		sa, n = unsafe.Pointer(&sa6), unix.SizeofSockaddrInet6
	default:
		return 0, fmt.Errorf("address %v: not of the socket's family", ap)
	}
	for {
		r, _, e := unix.RawSyscall6(unix.SYS_SENDTO, uintptr(c.fd), uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)), 0, uintptr(sa), n)
		switch e {
		case 0:
			return int(r), nil
		case unix.EINTR:
			continue
		default:
			return 0, e
		}
	}
}

// Close stops serving the socket and closes it; a ReadFrom waiting returns
// net.ErrClosed.
func (c *rawConn) Close() error {
	first := false
	c.closeOnce.Do(func() {
		first = true
		l := c.loop
		l.mu.Lock()
		if l.conns[int32(c.fd)] == c {
			delete(l.conns, int32(c.fd))
		}
		if !l.closed {
			_ = unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, c.fd, nil)
		}
		l.mu.Unlock()
		close(c.done)
		if c.state.Or(1)>>1 == 0 {
			c.closeFD()
		}
	})
	if !first {
		return c.opError("close", nil, net.ErrClosed)
	}
	return nil
}

func (c *rawConn) LocalAddr() net.Addr { return c.local }

// SetDeadline sets both deadlines. A deadline applies to the ReadFrom and
// WriteTo calls that start after it was set (WriteTo waits only while the
// send buffer is full, in steps of 100 ms).
func (c *rawConn) SetDeadline(t time.Time) error {
	setDeadline(&c.rdeadline, t)
	setDeadline(&c.wdeadline, t)
	return nil
}

func (c *rawConn) SetReadDeadline(t time.Time) error { setDeadline(&c.rdeadline, t); return nil }

func (c *rawConn) SetWriteDeadline(t time.Time) error { setDeadline(&c.wdeadline, t); return nil }

func setDeadline(p *atomic.Pointer[time.Time], t time.Time) {
	if t.IsZero() {
		p.Store(nil)
	} else {
		p.Store(&t)
	}
}
