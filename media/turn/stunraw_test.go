package turn

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/pion/stun"
)

// Raw TURN over TCP for tests that need what pion's client does not let
// them choose: the transaction ID, or a connection that never speaks.

// requestedTransportUDP is REQUESTED-TRANSPORT for UDP (RFC 5766 section 14.7).
var requestedTransportUDP = stun.RawAttribute{Type: stun.AttrRequestedTransport, Value: []byte{17, 0, 0, 0}}

// readSTUN reads one STUN message from a TCP stream (RFC 5389 framing: the
// header says how long the rest is).
func readSTUN(conn net.Conn) (*stun.Message, error) {
	head := make([]byte, 20)
	if _, err := io.ReadFull(conn, head); err != nil {
		return nil, err
	}
	body := make([]byte, binary.BigEndian.Uint16(head[2:4]))
	if _, err := io.ReadFull(conn, body); err != nil {
		return nil, err
	}
	m := &stun.Message{Raw: append(head, body...)}
	if err := m.Decode(); err != nil {
		return nil, fmt.Errorf("decode STUN answer: %w", err)
	}
	return m, nil
}

// roundTrip writes req on conn and reads the answer, waiting at most 10 s.
func roundTrip(conn net.Conn, req []byte) (*stun.Message, error) {
	if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		return nil, err
	}
	if _, err := conn.Write(req); err != nil {
		return nil, err
	}
	return readSTUN(conn)
}

// tcpNonce asks the server at addr for a nonce with an unauthenticated
// Allocate (answered 401 with NONCE and REALM). pion's nonces are valid on
// any connection for an hour.
func tcpNonce(t *testing.T, addr net.Addr) string {
	t.Helper()
	conn, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	req := stun.MustBuild(stun.TransactionID, stun.NewType(stun.MethodAllocate, stun.ClassRequest), requestedTransportUDP)
	resp, err := roundTrip(conn, req.Raw)
	if err != nil {
		t.Fatalf("unauthenticated Allocate: %v", err)
	}
	var nonce stun.Nonce
	if err := nonce.GetFrom(resp); err != nil {
		t.Fatalf("no NONCE in the answer to an unauthenticated Allocate (%v): %v", resp.Type, err)
	}
	return nonce.String()
}

// authAllocate builds an authenticated Allocate with transaction ID tx.
func authAllocate(t *testing.T, tx [stun.TransactionIDSize]byte, username, password, nonce string) []byte {
	t.Helper()
	m, err := stun.Build(
		&stun.Message{TransactionID: tx},
		stun.NewType(stun.MethodAllocate, stun.ClassRequest),
		requestedTransportUDP,
		stun.NewUsername(username),
		stun.NewRealm(DefaultRealm),
		stun.NewNonce(nonce),
		stun.NewLongTermIntegrity(username, DefaultRealm, password),
	)
	if err != nil {
		t.Fatal(err)
	}
	return m.Raw
}

// authRefresh builds an authenticated Refresh (lifetime left to the server).
func authRefresh(t *testing.T, username, password, nonce string) []byte {
	t.Helper()
	m, err := stun.Build(
		stun.TransactionID,
		stun.NewType(stun.MethodRefresh, stun.ClassRequest),
		stun.NewUsername(username),
		stun.NewRealm(DefaultRealm),
		stun.NewNonce(nonce),
		stun.NewLongTermIntegrity(username, DefaultRealm, password),
	)
	if err != nil {
		t.Fatal(err)
	}
	return m.Raw
}

// errorCode returns the ERROR-CODE of m, 0 for a success response.
func errorCode(m *stun.Message) int {
	if m.Type.Class == stun.ClassSuccessResponse {
		return 0
	}
	var ec stun.ErrorCodeAttribute
	if err := ec.GetFrom(m); err != nil {
		return -1
	}
	return int(ec.Code)
}
