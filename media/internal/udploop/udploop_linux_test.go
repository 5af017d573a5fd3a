package udploop

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func listen(t *testing.T, network, addr string) *net.UDPConn {
	t.Helper()
	c, err := net.ListenPacket(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c.(*net.UDPConn)
}

func newLoop(t *testing.T) *Loop { return startLoop(t, pace{paceLimits: defaultLimits}) }

func startLoop(t *testing.T, p pace) *Loop {
	t.Helper()
	l, err := start(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("loop Close: %v", err)
		}
	})
	return l
}

// Ways for a loop to wait in tests: as New starts it (parked, threaded when
// busy); always threaded; and switching every millisecond it serves.
var (
	staysThreaded = pace{threaded: true, paceLimits: paceLimits{window: time.Hour, busyLeave: -1}}
	flapping      = pace{paceLimits: paceLimits{window: time.Millisecond, busyEnter: 0, enterWindows: 1, busyLeave: 2, leaveWindows: 1}}
)

// TestLoop runs the loop's tests with each way of waiting.
func TestLoop(t *testing.T) {
	tests := map[string]func(*testing.T, func(*testing.T) *Loop){
		"HandlerAndReadFrom": testHandlerAndReadFrom, "DualStack": testDualStack, "Close": testClose,
		"LoopCloseClosesConns": testLoopCloseClosesConns, "CloseWhileBusy": testCloseWhileBusy,
		"ReadDeadline": testReadDeadline, "FullQueueDoesNotStopTheLoop": testFullQueueDoesNotStopTheLoop,
		"SwitchingLosesNothing": testSwitchingLosesNothing, "Backlog": testBacklog,
	}
	for wait, p := range map[string]pace{"default": {paceLimits: defaultLimits}, "threaded": staysThreaded, "flapping": flapping} {
		for name, test := range tests {
			t.Run(wait+"/"+name, func(t *testing.T) {
				test(t, func(t *testing.T) *Loop { return startLoop(t, p) })
			})
		}
	}
}

func localAddrPort(c net.PacketConn) netip.AddrPort {
	return c.LocalAddr().(*net.UDPAddr).AddrPort()
}

// testHandlerAndReadFrom: the Handler sees every datagram with its source;
// what it handles never reaches ReadFrom, the rest does, in order.
func testHandlerAndReadFrom(t *testing.T, newLoop func(*testing.T) *Loop) {
	l := newLoop(t)
	peer := listen(t, "udp4", "127.0.0.1:0")
	var mu sync.Mutex
	var seen []string
	handled := make(chan string, 10)
	c, err := l.Adopt(listen(t, "udp4", "127.0.0.1:0"), func(b []byte, from netip.AddrPort) bool {
		if from != localAddrPort(peer) {
			t.Errorf("source %v, want %v", from, localAddrPort(peer))
		}
		mu.Lock()
		seen = append(seen, string(b))
		mu.Unlock()
		if string(b[:4]) == "fast" {
			handled <- string(b)
			return true
		}
		return false
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	to := localAddrPort(c)
	for _, m := range []string{"slow1", "fast1", "slow2", "fast2"} {
		if _, err := peer.WriteToUDPAddrPort([]byte(m), to); err != nil {
			t.Fatal(err)
		}
	}
	buf := make([]byte, 100)
	for _, want := range []string{"slow1", "slow2"} {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, from, err := c.ReadFrom(buf)
		if err != nil || string(buf[:n]) != want {
			t.Fatalf("ReadFrom = %q, %v; want %q", buf[:n], err, want)
		}
		if from.(*net.UDPAddr).AddrPort() != localAddrPort(peer) {
			t.Errorf("ReadFrom source %v", from)
		}
	}
	for _, want := range []string{"fast1", "fast2"} {
		if got := <-handled; got != want {
			t.Errorf("handled %q, want %q", got, want)
		}
	}
	mu.Lock()
	if len(seen) != 4 {
		t.Errorf("handler saw %q, want all 4", seen)
	}
	mu.Unlock()

	// The Conn writes, with and without waiting.
	if _, err := c.WriteTo([]byte("w1"), peer.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WriteToAddrPort([]byte("w2"), localAddrPort(peer)); err != nil {
		t.Fatal(err)
	}
	_ = peer.SetReadDeadline(time.Now().Add(5 * time.Second))
	for _, want := range []string{"w1", "w2"} {
		n, from, err := peer.ReadFromUDPAddrPort(buf)
		if err != nil || string(buf[:n]) != want || from != to {
			t.Fatalf("peer got %q from %v, %v; want %q from %v", buf[:n], from, err, want, to)
		}
	}
}

// testDualStack: on an IPv6 socket an IPv4 client is seen by the Handler as
// IPv4, by ReadFrom as net.UDPConn reports it (mapped), and reached with
// either form.
func testDualStack(t *testing.T, newLoop func(*testing.T) *Loop) {
	l := newLoop(t)
	sock, err := net.ListenPacket("udp", "[::]:0")
	if err != nil {
		t.Skipf("no dual-stack socket here: %v", err)
	}
	peer := listen(t, "udp4", "127.0.0.1:0")
	got := make(chan netip.AddrPort, 1)
	c, err := l.Adopt(sock, func(b []byte, from netip.AddrPort) bool {
		got <- from
		return false
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	to := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), localAddrPort(c).Port())
	if _, err := peer.WriteToUDPAddrPort([]byte("x"), to); err != nil {
		t.Fatal(err)
	}
	if from := <-got; from != localAddrPort(peer) {
		t.Errorf("handler source %v, want %v", from, localAddrPort(peer))
	}
	buf := make([]byte, 10)
	_, from, err := c.ReadFrom(buf)
	if err != nil {
		t.Fatal(err)
	}
	if ua := from.(*net.UDPAddr); len(ua.IP) != net.IPv6len || !ua.IP.Equal(net.IPv4(127, 0, 0, 1)) {
		t.Errorf("ReadFrom source %#v, want ::ffff:127.0.0.1", ua)
	}
	if _, err := c.WriteToAddrPort([]byte("a"), localAddrPort(peer)); err != nil {
		t.Fatalf("write to IPv4 on an IPv6 socket: %v", err)
	}
	if _, err := c.WriteTo([]byte("b"), from); err != nil {
		t.Fatalf("write to mapped IPv4: %v", err)
	}
	_ = peer.SetReadDeadline(time.Now().Add(5 * time.Second))
	for _, want := range []string{"a", "b"} {
		if n, _, err := peer.ReadFrom(buf); err != nil || string(buf[:n]) != want {
			t.Fatalf("peer got %q, %v; want %q", buf[:n], err, want)
		}
	}
}

// testClose: Close wakes a waiting ReadFrom with net.ErrClosed, later calls
// fail with it, and the loop stops serving the socket.
func testClose(t *testing.T, newLoop func(*testing.T) *Loop) {
	l := newLoop(t)
	c, err := l.Adopt(listen(t, "udp4", "127.0.0.1:0"), func([]byte, netip.AddrPort) bool { return false })
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 1)
	go func() {
		_, _, err := c.ReadFrom(make([]byte, 10))
		errs <- err
	}()
	time.Sleep(20 * time.Millisecond) // let ReadFrom wait; it returns the same way if it had not yet
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-errs; !errors.Is(err, net.ErrClosed) {
		t.Errorf("waiting ReadFrom: %v, want net.ErrClosed", err)
	}
	if _, _, err := c.ReadFrom(make([]byte, 10)); !errors.Is(err, net.ErrClosed) {
		t.Errorf("ReadFrom after Close: %v", err)
	}
	if _, err := c.WriteToAddrPort([]byte("x"), netip.MustParseAddrPort("127.0.0.1:9")); !errors.Is(err, net.ErrClosed) {
		t.Errorf("WriteToAddrPort after Close: %v", err)
	}
	if _, err := c.WriteTo([]byte("x"), &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9}); !errors.Is(err, net.ErrClosed) {
		t.Errorf("WriteTo after Close: %v", err)
	}
	if err := c.Close(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("second Close: %v", err)
	}
	// The port is free again: the descriptor was closed.
	if _, err := net.ListenPacket("udp4", c.LocalAddr().String()); err != nil {
		t.Errorf("port still held after Close: %v", err)
	}
}

// testLoopCloseClosesConns: closing the loop closes what it still serves,
// and it adopts no more.
func testLoopCloseClosesConns(t *testing.T, newLoop func(*testing.T) *Loop) {
	l := newLoop(t)
	c, err := l.Adopt(listen(t, "udp4", "127.0.0.1:0"), func([]byte, netip.AddrPort) bool { return false })
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.ReadFrom(make([]byte, 10)); !errors.Is(err, net.ErrClosed) {
		t.Errorf("ReadFrom after the loop closed: %v", err)
	}
	if _, err := l.Adopt(listen(t, "udp4", "127.0.0.1:0"), nil); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Adopt after Close: %v", err)
	}
}

// testCloseWhileBusy: writers, the loop and Close racing on one socket
// (run with -race) end with every call returning and the socket closed.
func testCloseWhileBusy(t *testing.T, newLoop func(*testing.T) *Loop) {
	l := newLoop(t)
	peer := listen(t, "udp4", "127.0.0.1:0")
	for range 20 {
		c, err := l.Adopt(listen(t, "udp4", "127.0.0.1:0"), func(b []byte, from netip.AddrPort) bool { return len(b)%2 == 0 })
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		stop := make(chan struct{})
		for range 3 {
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					_, _ = c.WriteToAddrPort([]byte("ab"), localAddrPort(peer))
					_, _ = peer.WriteToUDPAddrPort([]byte("abc"), localAddrPort(c))
				}
			})
		}
		wg.Go(func() {
			buf := make([]byte, 10)
			for {
				if _, _, err := c.ReadFrom(buf); err != nil {
					return
				}
			}
		})
		time.Sleep(5 * time.Millisecond)
		_ = c.Close()
		close(stop)
		wg.Wait()
	}
}

// testReadDeadline: a past deadline fails ReadFrom with a timeout at once,
// a near one after waiting.
func testReadDeadline(t *testing.T, newLoop func(*testing.T) *Loop) {
	l := newLoop(t)
	c, err := l.Adopt(listen(t, "udp4", "127.0.0.1:0"), func([]byte, netip.AddrPort) bool { return false })
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	for _, d := range []time.Duration{-time.Second, 20 * time.Millisecond} {
		_ = c.SetReadDeadline(time.Now().Add(d))
		_, _, err := c.ReadFrom(make([]byte, 10))
		var ne net.Error
		if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
			t.Errorf("deadline %v: %v, want a timeout", d, err)
		}
	}
}

// testFullQueueDoesNotStopTheLoop: with nobody reading, datagrams for
// ReadFrom are dropped past the queue and the Handler still sees the rest.
func testFullQueueDoesNotStopTheLoop(t *testing.T, newLoop func(*testing.T) *Loop) {
	l := newLoop(t)
	peer := listen(t, "udp4", "127.0.0.1:0")
	fast := make(chan struct{}, 1)
	var slow atomic.Int64
	c, err := l.Adopt(listen(t, "udp4", "127.0.0.1:0"), func(b []byte, _ netip.AddrPort) bool {
		if string(b) == "fast" {
			fast <- struct{}{}
			return true
		}
		slow.Add(1)
		return false
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	// Twice the queue, in steps the socket's receive buffer holds.
	for sent := int64(1); slow.Load() < 2*queueLen; sent++ {
		if _, err := peer.WriteToUDPAddrPort([]byte("slow"), localAddrPort(c)); err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(time.Second); sent%32 == 0 && slow.Load() < sent && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
		}
	}
	if _, err := peer.WriteToUDPAddrPort([]byte("fast"), localAddrPort(c)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-fast:
	case <-time.After(10 * time.Second):
		t.Fatal("the loop stopped behind a full queue")
	}
	n := 0
	_ = c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	for {
		if _, _, err := c.ReadFrom(make([]byte, 10)); err != nil {
			break
		}
		n++
	}
	if n == 0 || n > queueLen {
		t.Errorf("ReadFrom got %d datagrams, want 1 to %d", n, queueLen)
	}
}

// TestWriteAllocatesNothing: the Handler's write path allocates nothing.
func TestWriteAllocatesNothing(t *testing.T) {
	l := newLoop(t)
	peer := listen(t, "udp4", "127.0.0.1:0")
	c, err := l.Adopt(listen(t, "udp4", "127.0.0.1:0"), func([]byte, netip.AddrPort) bool { return true })
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	b, to := []byte("x"), localAddrPort(peer)
	if n := testing.AllocsPerRun(100, func() { _, _ = c.WriteToAddrPort(b, to) }); n != 0 {
		t.Errorf("WriteToAddrPort allocates %v times", n)
	}
}

// TestNotUDP: a PacketConn that is not a UDP socket is served by its own
// ReadFrom, which calls the Handler.
func TestNotUDP(t *testing.T) {
	l := newLoop(t)
	inner := listen(t, "udp4", "127.0.0.1:0")
	peer := listen(t, "udp4", "127.0.0.1:0")
	c, err := l.Adopt(wrapped{inner}, func(b []byte, _ netip.AddrPort) bool { return string(b) == "fast" })
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"fast", "slow"} {
		_, _ = peer.WriteToUDPAddrPort([]byte(m), localAddrPort(inner))
	}
	buf := make([]byte, 10)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, _, err := c.ReadFrom(buf); err != nil || string(buf[:n]) != "slow" {
		t.Errorf("ReadFrom = %q, %v; want the unhandled datagram", buf[:n], err)
	}
}

type wrapped struct{ net.PacketConn }

// TestFlapping: a loop that changes how it waits every millisecond it serves
// does change, there and back, while serving testSwitchingLosesNothing.
func TestFlapping(t *testing.T) {
	var l *Loop
	testSwitchingLosesNothing(t, func(t *testing.T) *Loop { l = startLoop(t, flapping); return l })
	if n := l.changes.Load(); n < 4 {
		t.Errorf("the loop changed how it waits %d times, want at least 4", n)
	}
	t.Logf("%d changes", l.changes.Load())
}

// testSwitchingLosesNothing: every datagram reaches the Handler or ReadFrom
// exactly once and in order, whatever the loop's way of waiting, and however
// often it changes (flapping changes it every millisecond it serves).
func testSwitchingLosesNothing(t *testing.T, newLoop func(*testing.T) *Loop) {
	l := newLoop(t)
	peer := listen(t, "udp4", "127.0.0.1:0")
	handled := make(chan int, 64)
	c, err := l.Adopt(listen(t, "udp4", "127.0.0.1:0"), func(b []byte, _ netip.AddrPort) bool {
		if b[0] != 'h' {
			return false
		}
		n, _ := strconv.Atoi(string(b[1:]))
		handled <- n
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	const bursts, burst = 40, 50 // a burst fits the socket's buffer and the queue
	read := make(chan int, burst)
	go func() {
		buf := make([]byte, 16)
		for {
			n, _, err := c.ReadFrom(buf)
			if err != nil {
				close(read)
				return
			}
			i, _ := strconv.Atoi(string(buf[1:n]))
			read <- i
		}
	}()
	nextHandled, nextRead := 0, 1
	expect := func(got <-chan int, next *int, who string, burst int) {
		t.Helper()
		select {
		case n := <-got:
			if n != *next {
				t.Fatalf("%s got %d, want %d", who, n, *next)
			}
			*next += 2
		case <-time.After(10 * time.Second):
			t.Fatalf("burst %d: %s got nothing after %d", burst, who, *next-2)
		}
	}
	for b := range bursts {
		for i := b * burst; i < (b+1)*burst; i++ {
			kind := "h"
			if i%2 == 1 {
				kind = "r"
			}
			if _, err := peer.WriteToUDPAddrPort([]byte(kind+strconv.Itoa(i)), localAddrPort(c)); err != nil {
				t.Fatal(err)
			}
		}
		for range burst / 2 {
			expect(handled, &nextHandled, "the Handler", b)
			expect(read, &nextRead, "ReadFrom", b)
		}
		if b == bursts/2 {
			time.Sleep(20 * time.Millisecond) // a quiet spell between bursts
		}
	}
	select {
	case n := <-handled:
		t.Errorf("handled %d more than was sent", n)
	default:
	}
}

// testBacklog: a socket's backlog, read many datagrams at a time, reaches
// the Handler whole, in order, each with its own source, the empty datagram
// and the largest among them; what the Handler leaves reaches ReadFrom the
// same.
func testBacklog(t *testing.T, newLoop func(*testing.T) *Loop) {
	l := newLoop(t)
	sock := listen(t, "udp4", "127.0.0.1:0")
	if err := sock.SetReadBuffer(1 << 20); err != nil {
		t.Fatal(err)
	}
	peers := []*net.UDPConn{listen(t, "udp4", "127.0.0.1:0"), listen(t, "udp4", "127.0.0.1:0")}
	const largest = 65507 // IPv4's
	sizes := []int{0, 1, 2, 100, 1500, largest}
	type datagram struct {
		from netip.AddrPort
		b    []byte
	}
	var sent []datagram
	for i := range 3*maxBatch + 7 { // more than a batch holds, and not a whole number of them
		size := sizes[i%len(sizes)]
		if size == largest && i > len(sizes) {
			size = 300 // two of the largest: the socket's buffer holds the rest
		}
		b := make([]byte, size)
		for j := range b {
			b[j] = byte(i + j)
		}
		from := peers[i%2]
		if _, err := from.WriteToUDPAddrPort(b, localAddrPort(sock)); err != nil {
			t.Fatal(err)
		}
		sent = append(sent, datagram{localAddrPort(from), b})
	}
	toHandler := func(b []byte) bool { return len(b) > 0 && len(b) != 1500 }
	handled, read := make(chan datagram, len(sent)), make(chan datagram, len(sent))
	c, err := l.Adopt(sock, func(b []byte, from netip.AddrPort) bool {
		if toHandler(b) {
			handled <- datagram{from, bytes.Clone(b)}
			return true
		}
		return false
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	go func() {
		buf := make([]byte, 2000)
		for {
			n, from, err := c.ReadFrom(buf)
			if err != nil {
				return
			}
			ap, _ := AddrPort(from)
			read <- datagram{ap, bytes.Clone(buf[:n])}
		}
	}()
	for i, want := range sent {
		got, who := handled, "the Handler"
		if !toHandler(want.b) {
			got, who = read, "ReadFrom"
		}
		select {
		case d := <-got:
			if d.from != want.from || !bytes.Equal(d.b, want.b) {
				t.Fatalf("datagram %d: %s got %d bytes from %v, want %d bytes from %v", i, who, len(d.b), d.from, len(want.b), want.from)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("datagram %d of %d never reached %s", i, len(sent), who)
		}
	}
}

// TestBusyLoopLetsOthersIn: a parked loop serving a long backlog lets the
// runtime poll for the other loops' sockets every parkedYield, so a
// datagram for another loop is served while the first still has a backlog,
// not after it. One P is the hard case: the busy loop holds the only one.
func TestBusyLoopLetsOthersIn(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	busy, other := newLoop(t), newLoop(t)

	// The other loop's socket records how much of the backlog the busy
	// loop had served when the other's datagram was handled.
	var handled atomic.Int32
	servedAt := make(chan int32, 1)
	oc, err := other.Adopt(listen(t, "udp4", "127.0.0.1:0"), func([]byte, netip.AddrPort) bool {
		servedAt <- handled.Load()
		return true
	})
	if err != nil {
		t.Fatal(err)
	}

	// A backlog of three batches, queued before the busy loop serves the
	// socket, that take 80 µs a datagram to handle: a 7.7 ms stretch, under
	// the 10 ms after which the runtime preempts a goroutine. Handling the
	// first sends the other loop its datagram. The loop yields after each
	// batch; the runtime may run it first after a yield, but not after two.
	const backlog = 3 * maxBatch
	bs := listen(t, "udp4", "127.0.0.1:0")
	if err := bs.SetReadBuffer(1 << 20); err != nil {
		t.Fatal(err)
	}
	sender := listen(t, "udp4", "127.0.0.1:0")
	for range backlog {
		if _, err := sender.WriteTo([]byte("backlog"), bs.LocalAddr()); err != nil {
			t.Fatal(err)
		}
	}
	var once sync.Once
	if _, err := busy.Adopt(bs, func([]byte, netip.AddrPort) bool {
		once.Do(func() {
			if _, err := sender.WriteTo([]byte("other"), oc.LocalAddr()); err != nil {
				t.Error(err)
			}
		})
		for start := time.Now(); time.Since(start) < 80*time.Microsecond; {
		}
		handled.Add(1)
		return true
	}); err != nil {
		t.Fatal(err)
	}

	select {
	case n := <-servedAt:
		if n >= backlog {
			t.Fatalf("the other loop's datagram was served after all %d of the busy loop's backlog, want while the busy loop still had some", backlog)
		}
		t.Logf("the other loop's datagram was served after %d of %d", n, backlog)
	case <-time.After(10 * time.Second):
		t.Fatal("the other loop's datagram was not served")
	}
}
