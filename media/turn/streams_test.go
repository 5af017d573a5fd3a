package turn

import (
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pion/stun"
)

// startTCPServer runs a server with one TCP listener and the given limits
// of client connections.
func startTCPServer(t *testing.T, authTimeout, idleTimeout time.Duration, perSource int) (*Server, net.Addr) {
	t.Helper()
	tcp := loopbackTCP(t)
	s, _ := startServer(t, func(c *Config) {
		c.Listeners = []net.Listener{tcp}
		c.TCPAuthTimeout, c.TCPIdleTimeout, c.TCPConnsPerSource = authTimeout, idleTimeout, perSource
	})
	return s, tcp.Addr()
}

// dialFrom opens a TCP connection to addr from the loopback address local
// (any port), closed when the test ends.
func dialFrom(t *testing.T, local string, addr net.Addr) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
	c, err := d.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// closedByServer reports whether the server has closed c: a read returns
// EOF or a reset within 10 s (a generous bound for a loaded machine, not a
// performance figure), discarding what the server sent before.
func closedByServer(t *testing.T, c net.Conn) bool {
	t.Helper()
	if err := c.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	_, err := io.Copy(io.Discard, c)
	if err == nil || errors.Is(err, syscall.ECONNRESET) {
		return true // io.Copy reports EOF as nil
	}
	t.Logf("read from %v: %v", c.LocalAddr(), err)
	return false
}

// answers reports whether the server answers a STUN request on c.
func answers(c net.Conn) bool {
	req := stun.MustBuild(stun.TransactionID, stun.BindingRequest)
	_, err := roundTrip(c, req.Raw)
	return err == nil
}

// TestUnauthenticatedTCPClosed opens connections that never authenticate
// (silent, an unauthenticated Allocate, a Binding request, half a frame):
// the server closes each after TCPAuthTimeout, and its goroutines end.
func TestUnauthenticatedTCPClosed(t *testing.T) {
	_, addr := startTCPServer(t, 200*time.Millisecond, time.Minute, 0)
	baseline := runtime.NumGoroutine()
	var conns []net.Conn
	for i := 0; i < 40; i++ {
		c := dialFrom(t, "127.0.0.1", addr)
		var msg []byte
		switch i % 4 {
		case 1:
			msg = stun.MustBuild(stun.TransactionID, stun.NewType(stun.MethodAllocate, stun.ClassRequest), requestedTransportUDP).Raw
		case 2:
			msg = stun.MustBuild(stun.TransactionID, stun.BindingRequest).Raw
		case 3:
			msg = stun.MustBuild(stun.TransactionID, stun.BindingRequest).Raw[:10]
		}
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	for i, c := range conns {
		if !closedByServer(t, c) {
			t.Errorf("connection %d (kind %d) still open", i, i%4)
		}
		_ = c.Close()
	}
	eventually(t, func() bool { return runtime.NumGoroutine() <= baseline }, "goroutines back to the baseline")
}

// TestIdleTCPClosed checks that an authenticated connection outlives
// TCPAuthTimeout and is closed once it has been silent for TCPIdleTimeout.
func TestIdleTCPClosed(t *testing.T) {
	const authTimeout, idleTimeout = 200 * time.Millisecond, 3 * time.Second
	s, addr := startTCPServer(t, authTimeout, idleTimeout, 0)
	baseline := runtime.NumGoroutine()
	nonce := tcpNonce(t, addr)
	user, pass := creds("ivan", time.Hour)
	c := dialFrom(t, "127.0.0.1", addr)
	var tx [stun.TransactionIDSize]byte
	copy(tx[:], "idle-allocat")
	resp, err := roundTrip(c, authAllocate(t, tx, user, pass, nonce))
	if err != nil || errorCode(resp) != 0 {
		t.Fatalf("Allocate: %v, error code %d", err, errorCode(resp))
	}
	// Well past the authentication timeout, well within the idle timeout.
	time.Sleep(5 * authTimeout)
	resp, err = roundTrip(c, authRefresh(t, user, pass, nonce))
	if err != nil || errorCode(resp) != 0 {
		t.Fatalf("Refresh after the authentication timeout: %v (error code %d), want the connection open", err, errorCode(resp))
	}
	if !closedByServer(t, c) {
		t.Fatal("silent authenticated connection still open")
	}
	_ = c.Close()
	eventually(t, func() bool { return runtime.NumGoroutine() <= baseline }, "goroutines back to the baseline")
	// The allocation ended with its connection.
	eventually(t, func() bool { u, total := s.quotas.usage("ivan"); return s.Allocations() == 0 && u == 0 && total == 0 },
		"the allocation of the closed connection released")
}

// TestTCPConnsPerSource checks the cap on connections from one source IP:
// those over it are closed at once, other sources are not affected, a slot
// frees when a connection ends, and Close closes the rest.
func TestTCPConnsPerSource(t *testing.T) {
	const perSource = 3
	s, addr := startTCPServer(t, time.Minute, time.Minute, perSource)
	baseline := runtime.NumGoroutine()
	var kept []net.Conn
	for i := 0; i < perSource; i++ {
		kept = append(kept, dialFrom(t, "127.0.0.1", addr))
	}
	// Accepted in order: these are over the cap.
	for i := 0; i < 2; i++ {
		if c := dialFrom(t, "127.0.0.1", addr); !closedByServer(t, c) {
			t.Errorf("connection %d over the cap still open", perSource+i)
		}
	}
	for i, c := range kept {
		if !answers(c) {
			t.Errorf("connection %d within the cap not answered", i)
		}
	}
	other := dialFrom(t, "127.0.0.2", addr)
	if !answers(other) {
		t.Error("a connection from another source address is not answered")
	}
	// A connection that ends gives its slot back.
	_ = kept[0].Close()
	eventually(t, func() bool {
		c := dialFrom(t, "127.0.0.1", addr)
		ok := answers(c)
		if ok {
			kept[0] = c
		} else {
			_ = c.Close()
		}
		return ok
	}, "a slot given back after a connection ended")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for i, c := range append(kept, other) {
		if !closedByServer(t, c) {
			t.Errorf("connection %d still open after Close", i)
		}
		_ = c.Close()
	}
	eventually(t, func() bool { return runtime.NumGoroutine() <= baseline }, "goroutines back to the baseline")
}

// TestUnreadingTCPClosed: a client that sends requests but never reads the
// answers must not hold pion's goroutine in a blocked write beyond
// TCPAuthTimeout. Small socket buffers make the server's writes block soon.
func TestUnreadingTCPClosed(t *testing.T) {
	tcp := loopbackTCP(t)
	small := func(opt int) func(syscall.RawConn) error {
		return func(rc syscall.RawConn) error {
			var serr error
			if err := rc.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, opt, 4096) }); err != nil {
				return err
			}
			return serr
		}
	}
	rc, err := tcp.(*net.TCPListener).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	if err := small(syscall.SO_SNDBUF)(rc); err != nil { // accepted connections inherit it
		t.Fatal(err)
	}
	_, reg := startServer(t, func(c *Config) {
		c.Listeners = []net.Listener{tcp}
		c.TCPAuthTimeout, c.TCPIdleTimeout = 300*time.Millisecond, time.Minute
	})
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error { return small(syscall.SO_RCVBUF)(rc) }}
	c, err := d.Dial("tcp", tcp.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	req := stun.MustBuild(stun.TransactionID, stun.BindingRequest).Raw
	flood := make([]byte, 0, 20000*len(req))
	for i := 0; i < 20000; i++ {
		flood = append(flood, req...)
	}
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		_, _ = c.Write(flood) // blocks once the buffers are full, until the server closes
	}()
	eventually(t, func() bool {
		return metricValue(t, reg, "meeting_turn_connections_closed_total", "reason", "unauthenticated") == 1
	}, "the unreading connection closed")
	if !closedByServer(t, c) {
		t.Error("unreading connection still open")
	}
	_ = c.Close()
	<-sent
}

// failingListener fails its first Accepts with EMFILE, as a process out of
// file descriptors does.
type failingListener struct {
	net.Listener
	fails atomic.Int32
}

func (l *failingListener) Accept() (net.Conn, error) {
	if l.fails.Add(-1) >= 0 {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: l.Addr(), Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	return l.Listener.Accept()
}

// TestAcceptRetriedAfterEMFILE: pion stops serving a listener at the first
// Accept error; running out of file descriptors for a moment must not end
// TCP service for good.
func TestAcceptRetriedAfterEMFILE(t *testing.T) {
	l := &failingListener{Listener: loopbackTCP(t)}
	l.fails.Store(3)
	startServer(t, func(c *Config) { c.Listeners = []net.Listener{l} })
	c := dialFrom(t, "127.0.0.1", l.Addr())
	if !answers(c) {
		t.Fatal("no answer over TCP after Accept failed with EMFILE")
	}
	if !acceptRetryable(&net.OpError{Op: "accept", Err: os.NewSyscallError("accept4", syscall.ENFILE)}) || acceptRetryable(net.ErrClosed) {
		t.Error("acceptRetryable wrong")
	}
}
