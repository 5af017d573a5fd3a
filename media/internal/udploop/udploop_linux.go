package udploop

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// maxBatch is how many datagrams one socket may give the loop before the
// loop looks at the others (the socket stays readable, and epoll, level
// triggered, reports it again). They are read with one recvmmsg.
const maxBatch = 32

// queueLen is how many datagrams wait for ReadFrom before more are dropped,
// as a socket's receive buffer drops them when full.
const queueLen = 256

// maxDatagram is the largest datagram read: the IPv4 UDP maximum.
const maxDatagram = 65535

// threadedWait is the longest a threaded loop waits in epoll_wait before it
// weighs how busy it is again.
const threadedWait = 100 // ms

// yieldEvery is how often a threaded loop, which never parks, yields to the
// scheduler: the runtime takes the P of a goroutine that has run for 10 ms
// without being rescheduled each time that goroutine enters a system call.
const yieldEvery = 5 * time.Millisecond

// parkedYield is how long a parked loop serves without a break before it
// lets the others in (see yield).
const parkedYield = time.Millisecond

// Loop is one event loop goroutine and the sockets it serves.
//
// The loop waits for its sockets one of two ways (pace chooses): parked,
// through Go's poller, holding no thread, with epoll_wait only ever called
// not to wait; or threaded, blocked in epoll_wait on its own thread. An
// epoll instance is readable while one of its sockets is; while the loop is
// parked, its instance is in another, outer one, which is in Go's poller.
// (Go's poller has no way to leave a descriptor alone for a while: with the
// loop's own instance in it, every datagram a threaded loop is woken for
// would wake the poller's thread as well.)
type Loop struct {
	epfd    int      // the epoll instance of the sockets
	outer   *os.File // the epoll instance in Go's poller: holds epfd while parked
	wakefd  int      // an eventfd in epfd, which Close writes to
	yieldf  *os.File // an eventfd in Go's poller, which yield waits for
	yieldrc syscall.RawConn
	epoch   time.Time
	closing atomic.Bool
	done    chan struct{}
	changes atomic.Int64 // how often the loop changed how it waits

	mu     sync.RWMutex
	closed bool // under mu: epfd is closed or about to be
	conns  map[int32]*rawConn

	// Only the loop goroutine uses these.
	pace   pace
	parked bool // epfd is in outer
	events []unix.EpollEvent
	rx     *batch
	err    error // why the loop stopped, if not closed
}

// New starts a loop.
func New() (*Loop, error) { return start(pace{paceLimits: defaultLimits}) }

// start starts a loop that begins waiting as p says.
func start(p pace) (*Loop, error) {
	yieldfd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	yieldf := os.NewFile(uintptr(yieldfd), "udploop-yield") // non-blocking: in Go's poller
	yieldrc, err := yieldf.SyscallConn()
	if err != nil {
		err = fmt.Errorf("yield eventfd: %w", err)
	} else {
		var l *Loop
		if l, err = startWith(p, yieldf, yieldrc); err == nil {
			return l, nil
		}
	}
	_ = yieldf.Close()
	return nil, err
}

// startWith starts a loop that yields through yieldf.
func startWith(p pace, yieldf *os.File, yieldrc syscall.RawConn) (*Loop, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	wakefd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		_ = unix.Close(epfd)
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wakefd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(wakefd)}); err != nil {
		_ = unix.Close(epfd)
		_ = unix.Close(wakefd)
		return nil, fmt.Errorf("epoll_ctl eventfd: %w", err)
	}
	outerfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err == nil {
		err = unix.SetNonblock(outerfd, true)
	}
	if err == nil {
		err = unix.EpollCtl(outerfd, unix.EPOLL_CTL_ADD, epfd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(epfd)})
	}
	if err != nil {
		_ = unix.Close(epfd)
		_ = unix.Close(wakefd)
		if outerfd >= 0 {
			_ = unix.Close(outerfd)
		}
		return nil, fmt.Errorf("outer epoll instance: %w", err)
	}
	outer := os.NewFile(uintptr(outerfd), "udploop")
	rc, err := outer.SyscallConn()
	if err != nil {
		_ = outer.Close()
		_ = unix.Close(epfd)
		_ = unix.Close(wakefd)
		return nil, fmt.Errorf("outer epoll instance: %w", err)
	}
	l := &Loop{epfd: epfd, outer: outer, wakefd: wakefd, yieldf: yieldf, yieldrc: yieldrc, epoch: time.Now(), pace: p, parked: true, done: make(chan struct{}), conns: map[int32]*rawConn{},
		events: make([]unix.EpollEvent, 128), rx: newBatch()}
	go l.run(rc)
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
	// Wake the loop however it waits; it stops.
	one := [8]byte{1}
	if _, err := unix.Write(l.wakefd, one[:]); err != nil {
		_ = l.outer.Close() // wakes a parked loop all the same
	}
	<-l.done
	if err := errors.Join(l.outer.Close(), unix.Close(l.epfd), unix.Close(l.wakefd), l.yieldf.Close()); err != nil && !errors.Is(err, os.ErrClosed) {
		return fmt.Errorf("close epoll instance: %w", err)
	}
	if l.err != nil {
		return fmt.Errorf("event loop stopped: %w", l.err)
	}
	return nil
}

// run is the loop goroutine: it serves the sockets, parked or threaded as
// pace chooses, until Close.
func (l *Loop) run(rc syscall.RawConn) {
	defer close(l.done)
	for !l.closing.Load() && l.err == nil {
		if l.pace.threaded {
			l.runThreaded()
			continue
		}
		if err := l.setParked(true); err != nil {
			l.err = err
			return
		}
		if err := rc.Read(l.poll); err != nil && !l.closing.Load() && l.err == nil {
			l.err = err
		}
	}
}

// now is the loop's clock.
func (l *Loop) now() time.Duration { return time.Since(l.epoch) }

// switched reports whether the loop must now wait the other way, having
// served from from to to.
func (l *Loop) switched(from, to time.Duration) bool {
	if !l.pace.served(from, to) {
		return false
	}
	if l.pace.threaded && runtime.GOMAXPROCS(0) == 1 {
		l.pace.threaded = false // a thread of its own would only take turns with the others
		return false
	}
	l.changes.Add(1)
	return true
}

// poll serves whatever is ready and reports false, to be called again when
// the epoll instance is readable, once nothing is; true when the loop must
// stop or wait threaded.
func (l *Loop) poll(uintptr) bool {
	from := l.now()
	yielded := from
	for !l.closing.Load() {
		n, ok := l.ready(0)
		if !ok {
			return true
		}
		if n == 0 {
			return l.switched(from, l.now())
		}
		l.serve(n)
		now := l.now()
		if now-from < l.pace.window && now-yielded < parkedYield {
			continue
		}
		if l.switched(from, now) {
			return true
		}
		from = now
		if now-yielded >= parkedYield {
			if err := l.yield(); err != nil {
				l.err = err
				return true
			}
			from = l.now() // the time yielded was not spent serving
			yielded = from
		}
	}
	return true
}

// yield lets the runtime poll the network and run whatever that readies
// before the loop goes on. A goroutine woken from Go's poller leaves no
// thread waiting in it; until that goroutine parks, the runtime notices a
// socket made readable only when a thread goes idle, or when sysmon polls,
// every 10 ms. So a loop busy for a long stretch held up the other loops'
// sockets for as long (the quiet ~10k msg/s load: a TURN round-trip p99 of
// 10–18 ms, against coturn's 5–6). runtime.Gosched is not enough: it wakes
// an idle P, whose thread polls, but with one P the scheduler takes the
// loop back from the run queue before it polls, and only sysmon's poll
// lets the others in. So the loop makes an eventfd of its own
// readable and waits for it in Go's poller: the poll that finds it ready
// finds the other loops' sockets too.
func (l *Loop) yield() error {
	wrote := false
	var werr error
	err := l.yieldrc.Read(func(fd uintptr) bool {
		var b [8]byte
		if _, err := unix.Read(int(fd), b[:]); err == nil {
			return true // ready, and reset
		}
		if !wrote {
			wrote = true
			b[0] = 1
			if _, werr = unix.Write(int(fd), b[:]); werr != nil {
				return true
			}
		}
		return false
	})
	if err == nil {
		err = werr
	}
	if err != nil {
		return fmt.Errorf("yield eventfd: %w", err)
	}
	return nil
}

// setParked puts the loop's epoll instance in the outer one, which Go's
// poller waits for, or takes it out.
func (l *Loop) setParked(parked bool) error {
	if parked == l.parked {
		return nil
	}
	rc, err := l.outer.SyscallConn()
	if err != nil {
		return fmt.Errorf("outer epoll instance: %w", err)
	}
	var cerr error
	if err := rc.Control(func(fd uintptr) {
		if parked {
			cerr = unix.EpollCtl(int(fd), unix.EPOLL_CTL_ADD, l.epfd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(l.epfd)})
		} else {
			cerr = unix.EpollCtl(int(fd), unix.EPOLL_CTL_DEL, l.epfd, nil)
		}
	}); err != nil {
		return fmt.Errorf("outer epoll instance: %w", err)
	}
	if cerr != nil {
		return fmt.Errorf("epoll_ctl outer: %w", cerr)
	}
	l.parked = parked
	return nil
}

// runThreaded serves the sockets waiting in epoll_wait, a blocking system
// call in which the kernel wakes this goroutine's thread itself, until the
// loop must park again or stop.
func (l *Loop) runThreaded() {
	if err := l.setParked(false); err != nil {
		l.err = err
		return
	}
	yielded := l.now()
	for !l.closing.Load() && l.pace.threaded {
		n, ok := l.ready(threadedWait)
		if !ok {
			return
		}
		from := l.now()
		for n > 0 && !l.closing.Load() {
			l.serve(n)
			if n, ok = l.ready(0); !ok {
				return
			}
		}
		now := l.now()
		l.switched(from, now)
		if now-yielded >= yieldEvery {
			runtime.Gosched()
			yielded = l.now()
		}
	}
}

// ready fills l.events, waiting up to timeout ms for something to be ready
// (0: not at all, without entering the runtime's system call path; then
// the caller must not need the thread to be lent). It reports false when
// the loop must stop.
func (l *Loop) ready(timeout int) (int, bool) {
	for {
		var (
			n uintptr
			e syscall.Errno
		)
		if timeout == 0 {
			n, _, e = unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(l.epfd), uintptr(unsafe.Pointer(&l.events[0])), uintptr(len(l.events)), 0, 0, 0)
		} else {
			n, _, e = unix.Syscall6(unix.SYS_EPOLL_PWAIT, uintptr(l.epfd), uintptr(unsafe.Pointer(&l.events[0])), uintptr(len(l.events)), uintptr(timeout), 0, 0)
		}
		switch e {
		case 0:
			return int(n), true
		case unix.EINTR:
			if timeout != 0 {
				return 0, true
			}
		default: // EBADF, EFAULT, EINVAL: a bug here
			l.err = fmt.Errorf("epoll_pwait: %w", e)
			return 0, false
		}
	}
}

// serve drains the sockets of the first n of l.events.
func (l *Loop) serve(n int) {
	for _, ev := range l.events[:n] {
		l.mu.RLock()
		c := l.conns[ev.Fd]
		l.mu.RUnlock()
		if c != nil {
			l.drain(c)
		}
	}
}

// drain reads up to maxBatch datagrams from c and hands each on.
func (l *Loop) drain(c *rawConn) {
	if !c.acquire() {
		return
	}
	defer c.release()
	n := l.rx.read(c.fd)
	for i := range n {
		from, ok := sockaddrAddrPort(&l.rx.names[i])
		if !ok {
			continue
		}
		b := l.rx.datagram(i)
		if c.handle(b, from) {
			continue
		}
		c.deliver(b, from)
	}
}

// batch is where recvmmsg puts up to maxBatch datagrams and their sources.
// Each slot holds the largest datagram, so none is truncated; the kernel
// touches only the bytes it writes, so the memory in use is about the
// datagrams read.
type batch struct {
	msgs  [maxBatch]unix.Mmsghdr
	iovs  [maxBatch]unix.Iovec
	names [maxBatch]unix.RawSockaddrAny
	buf   []byte
}

func newBatch() *batch {
	b := &batch{buf: make([]byte, maxBatch*maxDatagram)}
	for i := range b.msgs {
		b.iovs[i].Base = &b.buf[i*maxDatagram]
		b.iovs[i].SetLen(maxDatagram)
		b.msgs[i].Hdr.Iov = &b.iovs[i]
		b.msgs[i].Hdr.SetIovlen(1)
		b.msgs[i].Hdr.Name = (*byte)(unsafe.Pointer(&b.names[i]))
	}
	return b
}

// read fills the batch from fd without waiting and reports how many
// datagrams it holds: 0 once the socket has none. One system call reads
// them all: on this project's 2-core VM (page table isolation on), reading
// a backlog of 100-byte datagrams cost 1.7 µs a datagram with recvfrom and
// 0.47 µs with recvmmsg 32 at a time. When it returns fewer than a batch
// the socket is empty, and no further call is needed to learn so. An error
// (EINTR, or one queued on the socket) is passed over and the read tried
// again, as often as a batch holds datagrams.
func (b *batch) read(fd int) int {
	for range maxBatch {
		for i := range b.msgs {
			b.msgs[i].Hdr.Namelen = unix.SizeofSockaddrAny
		}
		n, _, e := unix.RawSyscall6(unix.SYS_RECVMMSG, uintptr(fd), uintptr(unsafe.Pointer(&b.msgs[0])), maxBatch, unix.MSG_DONTWAIT, 0, 0)
		switch e {
		case 0:
			return int(n)
		case unix.EAGAIN:
			return 0
		}
	}
	return 0
}

// datagram is the i-th datagram read.
func (b *batch) datagram(i int) []byte {
	return b.buf[i*maxDatagram : i*maxDatagram+int(b.msgs[i].Len)]
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
