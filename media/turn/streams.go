package turn

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	pionturn "github.com/pion/turn/v2"
)

// listener is a client-facing TCP or TLS listener whose connections have the
// guard in front of pion. It refuses connections over the per-source cap at
// once and keeps every connection it hands pion in streams.
type listener struct {
	net.Listener
	guard   *guard
	streams *streams
}

// Accept returns the next connection pion should serve. pion stops serving
// a listener at the first error Accept returns, so errors that pass (out of
// file descriptors, as a connection flood can cause; a connection aborted
// before it was accepted) are retried after a pause growing from 5 ms to
// 1 s, as net/http does.
func (l *listener) Accept() (net.Conn, error) {
	var pause time.Duration
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			if !acceptRetryable(err) {
				return nil, err
			}
			pause = min(max(2*pause, 5*time.Millisecond), time.Second)
			l.streams.log.Warn("turn accept failed, retrying", "listener", l.Addr().String(), "err", err, "pause", pause.String())
			select {
			case <-time.After(pause):
			case <-l.streams.done:
				return nil, net.ErrClosed
			}
			continue
		}
		pause = 0
		if sc := l.streams.admit(c, l.guard); sc != nil {
			return sc, nil
		}
	}
}

// acceptRetryable reports whether Accept may succeed again after err.
func acceptRetryable(err error) bool {
	if errors.Is(err, net.ErrClosed) {
		return false
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) || errors.Is(err, syscall.ENOBUFS) ||
		errors.Is(err, syscall.ENOMEM) || errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.EINTR)
}

// streams keeps the client connections of a Server's listeners: how many
// each source address holds, and all of them for Close.
type streams struct {
	authTimeout, idleTimeout time.Duration
	perSource                int // 0: unlimited
	quotas                   *quotas
	metrics                  *metrics
	log                      *slog.Logger

	done chan struct{} // closed by close

	mu       sync.Mutex
	bySource map[netip.Addr]int
	open     map[*streamConn]struct{}
	closed   bool // Close has run: no more connections
}

func newStreams(authTimeout, idleTimeout time.Duration, perSource int, q *quotas, m *metrics, log *slog.Logger) *streams {
	return &streams{
		authTimeout: authTimeout, idleTimeout: idleTimeout, perSource: perSource,
		quotas: q, metrics: m, log: log,
		done:     make(chan struct{}),
		bySource: map[netip.Addr]int{},
		open:     map[*streamConn]struct{}{},
	}
}

// sourceOf is the IP address a connection comes from.
func sourceOf(c net.Conn) netip.Addr {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return a.AddrPort().Addr().Unmap()
	}
	ap, _ := netip.ParseAddrPort(c.RemoteAddr().String())
	return ap.Addr().Unmap()
}

// admit wraps an accepted connection for pion, or closes it and returns nil
// when its source holds as many connections as allowed or the server is
// closing.
func (s *streams) admit(c net.Conn, g *guard) *streamConn {
	src := sourceOf(c)
	s.mu.Lock()
	if s.closed || (s.perSource > 0 && s.bySource[src] >= s.perSource) {
		closing := s.closed
		s.mu.Unlock()
		_ = c.Close()
		if !closing {
			s.metrics.connClosed("source_limit")
			s.log.Debug("turn connection over the per-source cap closed", "client", c.RemoteAddr().String(), "cap", s.perSource)
		}
		return nil
	}
	sc := &streamConn{Conn: c, guard: g, streams: s, source: src, frames: pionturn.NewSTUNConn(c), buf: make([]byte, maxFrame)}
	s.bySource[src]++
	s.open[sc] = struct{}{}
	s.mu.Unlock()
	// Until it authenticates, a connection may neither stay silent nor
	// leave unread what pion writes to it longer than the auth timeout.
	by := time.Now().Add(s.authTimeout)
	_ = c.SetReadDeadline(by)
	_ = c.SetWriteDeadline(by)
	sc.writeBy.Store(by.UnixNano())
	return sc
}

// release forgets a connection that has closed.
func (s *streams) release(sc *streamConn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.open[sc]; !ok {
		return
	}
	delete(s.open, sc)
	if s.bySource[sc.source]--; s.bySource[sc.source] <= 0 {
		delete(s.bySource, sc.source)
	}
}

// close closes every connection and admits no more.
func (s *streams) close() {
	s.mu.Lock()
	if !s.closed {
		close(s.done)
	}
	s.closed = true
	conns := make([]*streamConn, 0, len(s.open))
	for sc := range s.open {
		conns = append(conns, sc)
	}
	s.mu.Unlock()
	for _, sc := range conns {
		_ = sc.Close()
	}
}

// maxFrame holds the largest STUN message or ChannelData frame.
const maxFrame = 20 + 1<<16

// streamConn cuts a TCP stream into TURN frames so that the guard sees whole
// messages, and hands pion the frames it lets through. Its read and write
// deadlines are the authentication timeout from its accept until the guard
// has checked the integrity of a request on it, then the idle timeout from
// the last frame read and the last write.
type streamConn struct {
	net.Conn
	guard   *guard
	streams *streams
	source  netip.Addr
	frames  *pionturn.STUNConn
	buf     []byte
	pending []byte // the rest of a frame pion has not read yet

	authed   atomic.Bool  // set once, by Read's goroutine
	readLeft time.Time    // the read deadline last set; Read's goroutine only
	writeBy  atomic.Int64 // the write deadline last set, Unix nanoseconds
	once     sync.Once
}

// Deadlines move by at least a quarter of the idle timeout, so that a busy
// connection does not reset its timers on every frame: a silent connection
// is closed between one and 1.25 idle timeouts after its last frame.
func (c *streamConn) idleDeadline(now time.Time) time.Time {
	return now.Add(c.streams.idleTimeout + c.streams.idleTimeout/4)
}

func (c *streamConn) extendRead(now time.Time) {
	if c.readLeft.Sub(now) >= c.streams.idleTimeout {
		return
	}
	c.readLeft = c.idleDeadline(now)
	_ = c.Conn.SetReadDeadline(c.readLeft)
}

func (c *streamConn) extendWrite(now time.Time) {
	if time.Duration(c.writeBy.Load()-now.UnixNano()) >= c.streams.idleTimeout {
		return
	}
	by := c.idleDeadline(now)
	c.writeBy.Store(by.UnixNano())
	_ = c.Conn.SetWriteDeadline(by)
}

func (c *streamConn) Read(p []byte) (int, error) {
	for len(c.pending) == 0 {
		n, _, err := c.frames.ReadFrom(c.buf)
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				reason := "idle"
				if !c.authed.Load() {
					reason = "unauthenticated"
				}
				c.timedOut(reason)
			}
			return 0, err
		}
		frame := c.buf[:n]
		reply, authed := c.guard.inbound(frame, "tcp", c.Conn.LocalAddr(), c.Conn.RemoteAddr())
		if authed && !c.authed.Load() {
			c.authed.Store(true)
			c.extendWrite(time.Now())
		}
		if c.authed.Load() {
			c.extendRead(time.Now())
		}
		if reply == nil {
			c.pending = frame
			break
		}
		if len(reply) == 0 {
			continue
		}
		if _, err := c.write(reply); err != nil {
			return 0, fmt.Errorf("send turn refusal: %w", err)
		}
	}
	n := copy(p, c.pending)
	c.pending = c.pending[n:]
	return n, nil
}

func (c *streamConn) Write(p []byte) (int, error) {
	if t, ok := stunType(p); ok && isAllocateAnswer(t) {
		c.guard.outbound(p, t, "tcp", c.Conn.LocalAddr(), c.Conn.RemoteAddr())
	}
	return c.write(p)
}

func (c *streamConn) write(p []byte) (int, error) {
	if c.authed.Load() {
		c.extendWrite(time.Now())
	}
	n, err := c.Conn.Write(p)
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		// The client has left unread what the server sent for the timeout:
		// it is gone, and a later write might succeed with a frame cut in two.
		reason := "idle"
		if !c.authed.Load() {
			reason = "unauthenticated"
		}
		c.timedOut(reason)
		_ = c.Close()
	}
	return n, err
}

// timedOut counts and logs a connection closed by a deadline.
func (c *streamConn) timedOut(reason string) {
	c.streams.metrics.connClosed(reason)
	c.streams.log.Debug("turn connection timed out", "client", c.Conn.RemoteAddr().String(), "reason", reason)
}

// Close closes the connection and ends its allocation: a TCP client cannot
// reach an allocation again once the connection of its 5-tuple is gone.
func (c *streamConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.streams.release(c)
		if r := c.streams.quotas.relayOf(tuple("tcp", c.Conn.LocalAddr(), c.Conn.RemoteAddr())); r != nil {
			_ = r.Close()
		}
	})
	return err
}
