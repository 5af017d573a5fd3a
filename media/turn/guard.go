package turn

import (
	"encoding/binary"
	"log/slog"
	"net"
	"net/netip"

	"github.com/pion/stun"
)

// STUN message types the guard looks at (RFC 5389 section 6 encoding).
var (
	allocateRequest         = stun.NewType(stun.MethodAllocate, stun.ClassRequest).Value()
	allocateSuccess         = stun.NewType(stun.MethodAllocate, stun.ClassSuccessResponse).Value()
	allocateError           = stun.NewType(stun.MethodAllocate, stun.ClassErrorResponse).Value()
	refreshRequest          = stun.NewType(stun.MethodRefresh, stun.ClassRequest).Value()
	createPermissionRequest = stun.NewType(stun.MethodCreatePermission, stun.ClassRequest).Value()
	channelBindRequest      = stun.NewType(stun.MethodChannelBind, stun.ClassRequest).Value()
	sendIndication          = stun.NewType(stun.MethodSend, stun.ClassIndication).Value()
)

// guard sees the TURN control messages on a client-facing socket before pion
// does, and pion's answers to them. It answers itself only to requests with
// wrong credentials (401) and to authenticated requests it refuses:
// Allocate over quota (486) and CreatePermission or ChannelBind naming a
// denied peer (403). When the policy allows exact peer
// addresses it also drops Send indications to other ports of their IPs.
// Everything else passes untouched; ChannelData, the bulk of the traffic,
// costs one byte comparison.
type guard struct {
	auth    *authenticator
	quotas  *quotas
	policy  PeerPolicy
	metrics *metrics
	log     *slog.Logger
}

// stunType returns the STUN message type of b, or false for ChannelData and
// anything else that is not a STUN message.
func stunType(b []byte) (uint16, bool) {
	if len(b) < 20 || b[0]&0xc0 != 0 || !stun.IsMessage(b) {
		return 0, false
	}
	return binary.BigEndian.Uint16(b[0:2]), true
}

// tuple names the client 5-tuple of a socket.
func tuple(network string, local, remote net.Addr) string {
	return network + " " + local.String() + " " + remote.String()
}

// dropped is the reply of inbound to a message that is neither answered
// nor handed to pion; it is never written to.
var dropped = []byte{}

// inbound inspects a message from a client. A nil reply hands it to pion;
// otherwise the caller sends reply, when it is not empty (see dropped), and
// does not hand the message to pion. authed reports that the message is a
// request whose credentials and MESSAGE-INTEGRITY the guard has checked.
func (g *guard) inbound(b []byte, network string, local, remote net.Addr) (reply []byte, authed bool) {
	t, ok := stunType(b)
	if !ok {
		return nil, false
	}
	switch t {
	case allocateRequest, refreshRequest, createPermissionRequest, channelBindRequest:
	case sendIndication:
		if g.policy.hasAddrs() {
			return g.send(b, remote), false
		}
		return nil, false
	default:
		return nil, false
	}
	m := &stun.Message{Raw: append([]byte(nil), b...)} // Check rewrites Raw in place
	if err := m.Decode(); err != nil || !m.Contains(stun.AttrMessageIntegrity) {
		return nil, false // pion answers 400 or 401
	}
	var username stun.Username
	var realm stun.Realm
	if username.GetFrom(m) != nil || realm.GetFrom(m) != nil {
		return nil, false
	}
	key, err := g.auth.key(username.String(), realm.String())
	if err == nil {
		err = stun.MessageIntegrity(key).Check(m)
	}
	if err != nil {
		g.metrics.authFailure(err)
		return g.unauthorized(m), false
	}
	switch t {
	case allocateRequest:
		return g.allocate(m, key, username.String(), tuple(network, local, remote)), true
	case createPermissionRequest, channelBindRequest:
		return g.permit(m, key, remote), true
	}
	return nil, true
}

// allocate reserves quota for an authenticated Allocate, or refuses it.
func (g *guard) allocate(m *stun.Message, key []byte, username, tuple string) []byte {
	_, user, _ := parseUsername(username)
	err := g.quotas.reserve(m.TransactionID, user, tuple)
	if err == nil {
		return nil
	}
	g.metrics.quotaRefusal(err)
	g.log.Info("turn allocation refused", "user", user, "client", tuple, "err", err)
	return g.refuse(m, key, stun.CodeAllocQuotaReached)
}

// permit refuses a CreatePermission or ChannelBind that names a denied peer.
func (g *guard) permit(m *stun.Message, key []byte, client net.Addr) []byte {
	denied := netip.AddrPort{}
	for _, a := range m.Attributes {
		if a.Type != stun.AttrXORPeerAddress {
			continue
		}
		peer, ok := xorPeer(m, a)
		if !ok {
			return nil // pion answers 400
		}
		if !g.policy.AllowedAddrPort(peer) {
			denied = peer
			break
		}
	}
	if !denied.IsValid() {
		return nil
	}
	g.metrics.permissionDenials.Inc()
	g.log.Info("turn peer refused by policy", "client", client.String(), "peer", denied.String())
	return g.refuse(m, key, stun.CodeForbidden)
}

// send drops a Send indication to a peer the policy denies. pion would
// relay it to any port of an IP it holds a permission for; indications get
// no answer, so the datagram just never leaves.
func (g *guard) send(b []byte, client net.Addr) []byte {
	m := &stun.Message{Raw: b}
	if err := m.Decode(); err != nil {
		return nil // pion drops it
	}
	for _, a := range m.Attributes {
		if a.Type != stun.AttrXORPeerAddress {
			continue
		}
		peer, ok := xorPeer(m, a)
		if !ok {
			return nil
		}
		if !g.policy.AllowedAddrPort(peer) {
			g.metrics.permissionDenials.Inc()
			g.log.Debug("turn send indication dropped by policy", "client", client.String(), "peer", peer.String())
			return dropped
		}
	}
	return nil
}

// xorPeer decodes one XOR-PEER-ADDRESS attribute (a request may carry several).
func xorPeer(m *stun.Message, a stun.RawAttribute) (netip.AddrPort, bool) {
	one := &stun.Message{TransactionID: m.TransactionID}
	one.Add(stun.AttrXORPeerAddress, a.Value)
	var peer stun.XORMappedAddress
	if err := peer.GetFromAs(one, stun.AttrXORPeerAddress); err != nil {
		return netip.AddrPort{}, false
	}
	ip, ok := netip.AddrFromSlice(peer.IP)
	if !ok || peer.Port < 0 || peer.Port > 65535 {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(ip, uint16(peer.Port)), true
}

// unauthorized answers a request whose credentials are wrong (an unknown,
// expired or malformed username, another realm, a MESSAGE-INTEGRITY that
// does not match) with 401, the realm and the request's own nonce, as RFC
// 8489 section 9.2.4 and coturn do; pion would answer 400 with no reason. A
// request without a nonce is left to pion, which answers 400.
func (g *guard) unauthorized(m *stun.Message) []byte {
	var nonce stun.Nonce
	if nonce.GetFrom(m) != nil {
		return nil
	}
	resp, err := stun.Build(
		&stun.Message{TransactionID: m.TransactionID},
		stun.NewType(m.Type.Method, stun.ClassErrorResponse),
		stun.CodeUnauthorized,
		stun.NewRealm(g.auth.realm),
		nonce,
	)
	if err != nil {
		g.log.Error("turn error response not built", "code", int(stun.CodeUnauthorized), "err", err)
		return dropped
	}
	return resp.Raw
}

// refuse builds an authenticated error response to m.
func (g *guard) refuse(m *stun.Message, key []byte, code stun.ErrorCode) []byte {
	resp, err := stun.Build(
		&stun.Message{TransactionID: m.TransactionID},
		stun.NewType(m.Type.Method, stun.ClassErrorResponse),
		code,
		stun.MessageIntegrity(key),
	)
	if err != nil {
		g.log.Error("turn error response not built", "code", int(code), "err", err)
		return dropped // fail closed: pion must not grant what the guard refuses
	}
	return resp.Raw
}

// isAllocateAnswer reports whether a message of STUN type t (see stunType)
// is an answer to an Allocate, which outbound must see.
func isAllocateAnswer(t uint16) bool { return t == allocateSuccess || t == allocateError }

// outbound watches pion's answers to Allocate requests (isAllocateAnswer)
// for the quotas; network, local and remote name the client 5-tuple the
// answer goes to, as in inbound.
func (g *guard) outbound(b []byte, t uint16, network string, local, remote net.Addr) {
	m := &stun.Message{Raw: b}
	if err := m.Decode(); err != nil {
		return
	}
	client := tuple(network, local, remote)
	if t == allocateError {
		g.quotas.refused(m.TransactionID, client)
		return
	}
	var relayed stun.XORMappedAddress // same encoding as XOR-RELAYED-ADDRESS
	if err := relayed.GetFromAs(m, stun.AttrXORRelayedAddress); err != nil {
		g.quotas.refused(m.TransactionID, client)
		return
	}
	if g.quotas.confirmed(m.TransactionID, client, relayKey(relayed.IP, relayed.Port)) {
		g.metrics.allocations.Inc()
		g.metrics.allocationsTotal.Inc()
	}
}

// relayKey names a relay address the same way from a response and a socket.
func relayKey(ip net.IP, port int) string {
	a, _ := netip.AddrFromSlice(ip)
	return netip.AddrPortFrom(a.Unmap(), uint16(port)).String()
}
