package e2e

import (
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"meeting.dev/meeting/test/testbin"
)

// TestTURNRelaysCoturnClient drives `meeting turn` with coturn's own test
// client, turnutils_uclient, using TURN REST API credentials (-W secret).
func TestTURNRelaysCoturnClient(t *testing.T) {
	needTool(t, "turnutils_uclient")
	needTool(t, "turnutils_peer")
	const secret = "e2e-turn-secret"
	// uclient gives every client the same user, so the per-user quota is lifted.
	d, port, httpAddr := meetingTURN(t, secret, "--user-quota", "0")

	peerPort := turnFreeUDPPort(t)
	startCmd(t, nil, needTool(t, "turnutils_peer"), "-L", "127.0.0.1", "-p", peerPort)

	for _, tc := range []struct {
		name string
		args []string
	}{
		{"udp client to client", []string{"-y", "-m", "4"}},
		{"udp to peer", []string{"-m", "2", "-e", "127.0.0.1", "-r", peerPort}},
		{"udp send indications", []string{"-s", "-y", "-m", "2"}},
		{"tcp client to client", []string{"-t", "-y", "-m", "2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := relayedToPeer(t, httpAddr)
			args := append([]string{"-W", secret, "-p", port, "-n", "40", "-l", "120", "-z", "5"}, tc.args...)
			r := runUclient(t, 2*time.Minute, append(args, "127.0.0.1")...)
			if r.sent == 0 || r.received == 0 {
				t.Fatalf("sent %d, received %d:\n%s", r.sent, r.received, r.output)
			}
			// Loopback at 200 messages/s loses nothing unless the relay does.
			if r.lost != 0 || r.received != r.sent {
				t.Fatalf("sent %d, received %d, lost %d:\n%s", r.sent, r.received, r.lost, r.output)
			}
			if relayed := relayedToPeer(t, httpAddr) - before; relayed < float64(r.sent) {
				t.Errorf("metrics count %v datagrams relayed to peers, uclient sent %d", relayed, r.sent)
			}
		})
	}

	t.Run("wrong secret refused", func(t *testing.T) {
		before := turnMetric(t, httpAddr, `meeting_turn_auth_failures_total{reason="integrity"}`)
		cmd := runUclientRaw(t, "-W", "not-the-secret", "-p", port, "-n", "5", "-m", "1", "-y", "127.0.0.1")
		if strings.Contains(cmd, "tot_recv_msgs=") && !regexp.MustCompile(`tot_recv_msgs=0\b`).MatchString(cmd) {
			t.Fatalf("uclient relayed with a wrong secret:\n%s", cmd)
		}
		if after := turnMetric(t, httpAddr, `meeting_turn_auth_failures_total{reason="integrity"}`); after <= before {
			t.Fatalf("no integrity failure counted (%v → %v):\n%s", before, after, cmd)
		}
	})

	resp, err := http.Get("http://" + httpAddr + "/readyz")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("/readyz: %v %v", resp, err)
	}
	_ = resp.Body.Close()
	d.stop(t)
}

// runUclientRaw runs turnutils_uclient expecting it may fail; it returns its output.
func runUclientRaw(t *testing.T, args ...string) string {
	t.Helper()
	d := startCmd(t, nil, needTool(t, "turnutils_uclient"), args...)
	select {
	case <-d.done:
	case <-time.After(time.Minute):
		t.Fatalf("turnutils_uclient did not finish:\n%s", d.out.String())
	}
	return d.out.String()
}

// turnFreeUDPPort returns a UDP (and, most likely, TCP) port free right now.
func turnFreeUDPPort(t testing.TB) string {
	t.Helper()
	for {
		pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := pc.LocalAddr().(*net.UDPAddr).Port
		_ = pc.Close()
		if l, err := net.Listen("tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(port))); err == nil {
			_ = l.Close()
			return strconv.Itoa(port)
		}
	}
}

// waitUDPServer waits until a STUN Binding request to port is answered.
func waitUDPServer(t testing.TB, port string) {
	t.Helper()
	conn, err := net.Dial("udp4", net.JoinHostPort("127.0.0.1", port))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	// A Binding request: type 0x0001, length 0, magic cookie, transaction ID.
	req := []byte{0, 1, 0, 0, 0x21, 0x12, 0xa4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
	buf := make([]byte, 1500)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		_, _ = conn.Write(req)
		_ = conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		if n, err := conn.Read(buf); err == nil && n >= 20 {
			return
		}
	}
	t.Fatalf("no STUN answer on 127.0.0.1:%s", port)
}

func relayedToPeer(t *testing.T, httpAddr string) float64 {
	return turnMetric(t, httpAddr, `meeting_turn_relayed_packets_total{direction="to_peer"}`)
}

// turnMetric reads one series from /metrics; 0 when it is absent.
func turnMetric(t *testing.T, httpAddr, series string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + httpAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("metric %s: %v", series, err)
			}
			return f
		}
	}
	return 0
}

// TestTURNFlagErrors checks that `meeting turn` refuses bad configuration
// with a message naming the problem, and never starts without a secret.
func TestTURNFlagErrors(t *testing.T) {
	bin := testbin.Meeting(t)
	base := []string{"turn", "--listen", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"}
	for _, tc := range []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"no secret", nil, []string{"--relay-ip", "127.0.0.1"}, "--auth-secret (or MEETING_TURN_SECRET) is required"},
		{"no relay ip", []string{"MEETING_TURN_SECRET=s"}, nil, "--relay-ip is required"},
		{"bad relay ip", []string{"MEETING_TURN_SECRET=s"}, []string{"--relay-ip", "nope"}, "--relay-ip"},
		{"ipv6 relay ip", []string{"MEETING_TURN_SECRET=s"}, []string{"--relay-ip", "::1"}, "want a specific IPv4 address"},
		{"bad allow-peer", []string{"MEETING_TURN_SECRET=s"}, []string{"--relay-ip", "127.0.0.1", "--allow-peer", "10.0.0.0/33"}, "10.0.0.0/33"},
		{"bad allow-peer from env", []string{"MEETING_TURN_SECRET=s", "MEETING_ALLOW_PEER=127.0.0.0/8,x"}, []string{"--relay-ip", "127.0.0.1"}, `"x"`},
		{"ports reversed", []string{"MEETING_AUTH_SECRET=s"}, []string{"--relay-ip", "127.0.0.1", "--relay-port-min", "60000", "--relay-port-max", "50000"}, "relay ports 60000-50000"},
		{"half a TLS pair", []string{"MEETING_TURN_SECRET=s"}, []string{"--relay-ip", "127.0.0.1", "--tls-cert", "/nonexistent"}, "--tls-cert and --tls-key go together"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := startCmd(t, tc.env, bin, append(append([]string{}, base...), tc.args...)...)
			select {
			case <-d.done:
			case <-time.After(30 * time.Second):
				t.Fatal("meeting turn did not exit")
			}
			if d.err == nil {
				t.Fatalf("exit status 0, want an error:\n%s", d.out.String())
			}
			if !strings.Contains(d.out.String(), tc.want) {
				t.Fatalf("output does not mention %q:\n%s", tc.want, d.out.String())
			}
		})
	}
}
