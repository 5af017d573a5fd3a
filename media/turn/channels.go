package turn

import (
	"encoding/binary"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/pion/stun"

	"meeting.dev/meeting/media/internal/udploop"
)

var (
	channelBindSuccess = stun.NewType(stun.MethodChannelBind, stun.ClassSuccessResponse).Value()
	channelBindError   = stun.NewType(stun.MethodChannelBind, stun.ClassErrorResponse).Value()
)

// channelLifetime is how long a channel binding lasts without a refresh
// (RFC 5766 section 11: 10 minutes, pion's default), less a second so that
// the fast path gives up on a binding before pion drops it.
const channelLifetime = 10*time.Minute - time.Second

// maxPendingBinds bounds ChannelBind requests awaiting pion's answer.
const maxPendingBinds = 10000

// channels mirrors, for one client-facing UDP socket, the channel bindings
// pion has granted, so that ChannelData from clients (the bulk of relayed
// traffic) goes straight to the relay socket, and datagrams from bound peers
// straight back to the client as ChannelData (see relayConn.forward),
// instead of through pion's per-datagram handling. A binding enters the table only when pion
// answers its ChannelBind with success; anything the table does not know
// (unbound, expired, or an allocation that has ended) goes to pion as before.
type channels struct {
	quotas *quotas
	sock   udploop.Conn // the client-facing socket, for ChannelData to clients
	now    func() time.Time

	mu      sync.RWMutex
	bound   map[channelKey]channelEntry
	pending map[[stun.TransactionIDSize]byte]pendingBind
}

type channelKey struct {
	client netip.AddrPort
	number uint16
}

type channelEntry struct {
	relay   *relayConn
	peer    netip.AddrPort
	expires time.Time
}

type pendingBind struct {
	key   channelKey
	peer  netip.AddrPort
	tuple string
}

func newChannels(q *quotas, now func() time.Time) *channels {
	return &channels{
		quotas: q, now: now,
		bound:   map[channelKey]channelEntry{},
		pending: map[[stun.TransactionIDSize]byte]pendingBind{},
	}
}

// handle relays ChannelData from a client on a bound channel, reporting
// false for anything else.
func (t *channels) handle(b []byte, from netip.AddrPort) bool {
	return len(b) >= 4 && b[0]&0xc0 == 0x40 && t.relay(b, from)
}

// request notes a ChannelBind request pion is about to handle.
func (t *channels) request(b []byte, local, remote net.Addr) {
	client, ok := udploop.AddrPort(remote)
	if !ok {
		return
	}
	m := &stun.Message{Raw: b}
	if m.Decode() != nil {
		return
	}
	num, err := m.Get(stun.AttrChannelNumber)
	if err != nil || len(num) < 2 {
		return
	}
	var xpeer stun.XORMappedAddress // same encoding as XOR-PEER-ADDRESS
	if xpeer.GetFromAs(m, stun.AttrXORPeerAddress) != nil {
		return
	}
	peer, ok := udploop.AddrPort(&net.UDPAddr{IP: xpeer.IP, Port: xpeer.Port})
	if !ok || !peer.Addr().IsValid() {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.pending) >= maxPendingBinds {
		clear(t.pending)
	}
	t.pending[m.TransactionID] = pendingBind{
		key:   channelKey{client: client, number: binary.BigEndian.Uint16(num)},
		peer:  peer,
		tuple: tuple("udp", local, remote),
	}
}

// answered notes pion's answer to a ChannelBind.
func (t *channels) answered(b []byte, typ uint16) {
	m := &stun.Message{Raw: b}
	if m.Decode() != nil {
		return
	}
	t.mu.Lock()
	p, ok := t.pending[m.TransactionID]
	delete(t.pending, m.TransactionID)
	t.mu.Unlock()
	if !ok || typ != channelBindSuccess {
		return
	}
	relay := t.quotas.relayOf(p.tuple)
	if relay == nil {
		return
	}
	expires := t.now().Add(channelLifetime)
	relay.bind(p.peer, peerBinding{sock: t.sock, client: p.key.client, number: p.key.number, expires: expires})
	t.mu.Lock()
	defer t.mu.Unlock()
	t.bound[p.key] = channelEntry{relay: relay, peer: p.peer, expires: expires}
}

// relay sends a ChannelData datagram from client out of its allocation's
// relay socket, reporting false when pion should handle it instead.
func (t *channels) relay(b []byte, client netip.AddrPort) bool {
	if len(b) < 4 {
		return false
	}
	key := channelKey{client: client, number: binary.BigEndian.Uint16(b[0:2])}
	size := int(binary.BigEndian.Uint16(b[2:4]))
	if 4+size > len(b) {
		return false
	}
	t.mu.RLock()
	e, ok := t.bound[key]
	t.mu.RUnlock()
	if !ok {
		return false
	}
	if e.relay.closed.Load() || t.now().After(e.expires) {
		t.mu.Lock()
		if cur, ok := t.bound[key]; ok && cur == e {
			delete(t.bound, key)
		}
		t.mu.Unlock()
		return false
	}
	e.relay.writeToPeer(b[4:4+size], e.peer)
	return true
}
