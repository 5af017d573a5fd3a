package e2e

import (
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"
)

// TestTURNClosesIdleTCP runs `meeting turn` with short connection limits
// and checks them over real TCP connections: one that never authenticates
// is closed after --tcp-auth-timeout, and one over --tcp-conns-per-source
// at once; the metric counts both reasons.
func TestTURNClosesIdleTCP(t *testing.T) {
	const secret = "e2e-turn-conns"
	d, port, httpAddr := meetingTURN(t, secret,
		"--tcp-auth-timeout", "300ms", "--tcp-conns-per-source", "2")
	addr := net.JoinHostPort("127.0.0.1", port)
	var conns []net.Conn
	for i := 0; i < 3; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		conns = append(conns, c)
	}
	// All three end: the third over the cap, the first two silent.
	for i, c := range conns {
		if err := c.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
			t.Fatal(err)
		}
		_, err := io.Copy(io.Discard, c)
		if err != nil && !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("connection %d not closed by the server: %v", i, err)
		}
	}
	for _, reason := range []string{"unauthenticated", "source_limit"} {
		series := `meeting_turn_connections_closed_total{reason="` + reason + `"}`
		if got := turnMetric(t, httpAddr, series); got < 1 {
			t.Errorf("%s = %v, want at least 1", series, got)
		}
	}
	d.stop(t)
}
