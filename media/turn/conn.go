package turn

import (
	"encoding/binary"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	pionturn "github.com/pion/turn/v2"

	"meeting.dev/meeting/media/internal/udploop"
)

// packetConn is a client-facing UDP socket with the guard in front of pion.
// ChannelData on channels pion has bound goes straight to the relay socket
// (channels.handle, on the socket's event loop) and never reaches ReadFrom.
type packetConn struct {
	udploop.Conn
	guard    *guard
	channels *channels
	log      *slog.Logger
}

// ReadFrom returns the next datagram pion should handle; the guard's own
// refusals are answered here and not returned.
func (c *packetConn) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		n, addr, err := c.Conn.ReadFrom(p)
		if err != nil {
			return n, addr, err
		}
		b := p[:n]
		reply, _ := c.guard.inbound(b, "udp", c.Conn.LocalAddr(), addr)
		if reply == nil {
			if t, ok := stunType(b); ok && t == channelBindRequest {
				c.channels.request(b, c.Conn.LocalAddr(), addr)
			}
			return n, addr, nil
		}
		if len(reply) == 0 {
			continue
		}
		if _, err := c.Conn.WriteTo(reply, addr); err != nil {
			c.log.Debug("turn refusal not sent", "client", addr.String(), "err", err)
		}
	}
}

// WriteTo sends pion's datagram, letting the guard see Allocate answers and
// the channel table ChannelBind answers.
func (c *packetConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	if t, ok := stunType(p); ok {
		switch {
		case isAllocateAnswer(t):
			c.guard.outbound(p, t, "udp", c.Conn.LocalAddr(), addr)
		case t == channelBindSuccess || t == channelBindError:
			c.channels.answered(p, t)
		}
	}
	return c.Conn.WriteTo(p, addr)
}

// relays wraps pion's relay address generator: each relay socket counts the
// traffic it carries and releases its quota when pion closes it.
type relays struct {
	next    pionturn.RelayAddressGenerator
	loops   *loops
	policy  PeerPolicy
	quotas  *quotas
	metrics *metrics
	now     func() time.Time
}

func (r *relays) Validate() error {
	if err := r.next.Validate(); err != nil {
		return fmt.Errorf("relay address generator: %w", err)
	}
	return nil
}

func (r *relays) AllocatePacketConn(network string, requestedPort int) (net.PacketConn, net.Addr, error) {
	conn, addr, err := r.next.AllocatePacketConn(network, requestedPort)
	if err != nil {
		return nil, nil, fmt.Errorf("open relay socket: %w", err)
	}
	udp, ok := addr.(*net.UDPAddr)
	if !ok {
		_ = conn.Close()
		return nil, nil, fmt.Errorf("open relay socket: unexpected address %v", addr)
	}
	key := relayKey(udp.IP, udp.Port)
	rc := &relayConn{key: key, relays: r}
	if rc.Conn, err = r.loops.next().Adopt(conn, rc.handle); err != nil {
		_ = conn.Close()
		return nil, nil, fmt.Errorf("open relay socket: %w", err)
	}
	r.quotas.opened(key, rc)
	return rc, addr, nil
}

func (r *relays) AllocateConn(network string, requestedPort int) (net.Conn, net.Addr, error) {
	return nil, nil, ErrTCPRelay
}

// relayConn is the relay socket of one allocation.
type relayConn struct {
	udploop.Conn
	key    string
	relays *relays
	once   sync.Once
	closed atomic.Bool

	mu    sync.RWMutex
	binds map[netip.AddrPort]peerBinding // peers bound to a channel, see channels
	out   []byte                         // ChannelData being sent; only handle's goroutine uses it
}

// peerBinding is where datagrams from a peer bound to a channel go.
type peerBinding struct {
	sock    udploop.Conn // the client-facing socket of the allocation
	client  netip.AddrPort
	number  uint16
	expires time.Time
}

// bind records that datagrams from peer go to the client on a channel.
func (c *relayConn) bind(peer netip.AddrPort, b peerBinding) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.binds == nil {
		c.binds = map[netip.AddrPort]peerBinding{}
	}
	c.binds[peer] = b
}

// handle sees each datagram a peer sends to the relay address. Those from
// peers bound to a channel are sent to the client as ChannelData here; the
// rest go to pion (ReadFrom), but for those from a peer the policy denies:
// pion holds permissions per IP, and a permission for an exact allowed
// address must not let other ports of its IP reach the client.
func (c *relayConn) handle(b []byte, from netip.AddrPort) bool {
	if c.forward(b, from) {
		c.countToClient(len(b))
		return true
	}
	if c.relays.policy.hasAddrs() && !c.relays.policy.AllowedAddrPort(from) {
		return true // dropped
	}
	c.countToClient(len(b))
	return false
}

func (c *relayConn) countToClient(n int) {
	c.relays.metrics.toClientPackets.Inc()
	c.relays.metrics.toClientBytes.Add(float64(n))
}

// forward sends a peer's datagram to the client on the peer's channel,
// reporting false when pion should handle it instead.
func (c *relayConn) forward(data []byte, from netip.AddrPort) bool {
	c.mu.RLock()
	b, ok := c.binds[from]
	c.mu.RUnlock()
	if !ok {
		return false
	}
	if c.relays.now().After(b.expires) {
		c.mu.Lock()
		if cur, ok := c.binds[from]; ok && cur == b {
			delete(c.binds, from)
		}
		c.mu.Unlock()
		return false
	}
	if cap(c.out) < 4+len(data) {
		c.out = make([]byte, 4+max(len(data), 1500))
	}
	out := c.out[:4+len(data)]
	binary.BigEndian.PutUint16(out[0:2], b.number)
	binary.BigEndian.PutUint16(out[2:4], uint16(len(data)))
	copy(out[4:], data)
	_, _ = b.sock.WriteToAddrPort(out, b.client) // as pion: a datagram that cannot be sent is dropped
	return true
}

// WriteTo sends what the client relays to a peer (pion's path).
func (c *relayConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	n, err := c.Conn.WriteTo(p, addr)
	if err == nil {
		c.countToPeer(n)
	}
	return n, err
}

// writeToPeer sends ChannelData's payload to a peer (the fast path).
func (c *relayConn) writeToPeer(p []byte, peer netip.AddrPort) {
	if n, err := c.Conn.WriteToAddrPort(p, peer); err == nil { // as pion: a datagram that cannot be sent is dropped
		c.countToPeer(n)
	}
}

func (c *relayConn) countToPeer(n int) {
	c.relays.metrics.toPeerPackets.Inc()
	c.relays.metrics.toPeerBytes.Add(float64(n))
}

func (c *relayConn) Close() error {
	c.once.Do(func() {
		c.closed.Store(true)
		if c.relays.quotas.closed(c.key) {
			c.relays.metrics.allocations.Dec()
		}
	})
	return c.Conn.Close()
}

// loops spreads relay sockets over the server's event loops.
type loops struct {
	all []*udploop.Loop
	n   atomic.Uint32
}

func (l *loops) next() *udploop.Loop {
	return l.all[int(l.n.Add(1))%len(l.all)]
}
