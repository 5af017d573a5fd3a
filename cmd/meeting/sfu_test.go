package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"meeting.dev/meeting/media/client"
	"meeting.dev/meeting/media/token"
	"meeting.dev/meeting/test/testbin"
)

// freePorts returns a free loopback TCP port and a free UDP port.
func freePorts(t *testing.T) (tcp, udp int) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tcp = l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	u, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	udp = u.LocalAddr().(*net.UDPAddr).Port
	_ = u.Close()
	return tcp, udp
}

func TestSFURoleServesLoadtestAndDrains(t *testing.T) {
	httpPort, udpPort := freePorts(t)
	const key = "0123456789abcdef0123456789abcdef"
	t.Setenv("MEETING_TOKEN_KEY", key)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var logs testbin.Buffer
	done := make(chan error, 1)
	go func() {
		done <- runSFU(ctx, []string{
			"--http-addr", "127.0.0.1:" + strconv.Itoa(httpPort),
			"--udp-ip", "127.0.0.1", "--udp-port", strconv.Itoa(udpPort),
			"--room", "r1", "--drain-timeout", "2s", "--log-format", "text",
		}, &logs, &logs)
	}()
	base := "http://127.0.0.1:" + strconv.Itoa(httpPort)
	wsURL := "ws://127.0.0.1:" + strconv.Itoa(httpPort) + "/ws"
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("sfu not ready: %v\n%s", err, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}

	var out testbin.Buffer
	err := runLoadtest(context.Background(), []string{"--url", wsURL, "--token-key", key, "--room", "r1",
		"--publishers", "1", "--subscribers", "2", "--audio", "--video", "--duration", "1s", "--settle", "100ms"}, &out, &out)
	if err != nil {
		t.Fatalf("loadtest: %v\n%s", err, out.String())
	}
	for _, want := range []string{"publishers 1, subscribers 2, tracks 2", "packets/s", "p50", "p99", "load tool: CPU", "NACKs sent", "own sockets dropped"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("loadtest output lacks %q:\n%s", want, out.String())
		}
	}
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	var m bytes.Buffer
	_, _ = m.ReadFrom(resp.Body)
	_ = resp.Body.Close()
	if !strings.Contains(m.String(), "meeting_sfu_forwarded_packets_total") {
		t.Fatalf("metrics lack forwarded packets:\n%.500s", m.String())
	}

	// The role serves --room only.
	other, err := token.Mint([]byte(key), token.Claims{Room: "r2", User: "x"}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := client.Join(context.Background(), client.Options{URL: wsURL, Token: other}); err == nil {
		c.Close()
		t.Fatal("joined a room other than --room")
	} else if !strings.Contains(err.Error(), "unauthorized") || !strings.Contains(err.Error(), "only room") {
		t.Fatalf("join of another room: %v", err)
	}

	// A participant still connected at SIGTERM is told and then cut off.
	tok, err := token.Mint([]byte(key), token.Claims{Room: "r1", User: "late"}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.Join(context.Background(), client.Options{URL: wsURL, Token: tok})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("runSFU: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("runSFU did not return after the drain timeout")
	}
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the participant is still connected")
	}
	if c.Closing() == nil { // read before the connection ended
		t.Error("the participant got no closing notice")
	}
}

func TestSFURoleRefusesBadFlags(t *testing.T) {
	const key32 = "0123456789abcdef0123456789abcdef"
	t.Setenv("MEETING_TOKEN_KEY", "")
	for _, args := range [][]string{
		{}, // no token key
		{"--token-key", key32, "--max-participants", "0"},
		{"--token-key", key32, "--public-ip", "not-an-ip"},
		{"--token-key", key32, "--udp-ip", "nowhere"},
	} {
		var out bytes.Buffer
		err := runSFU(context.Background(), args, &out, &out)
		if err == nil {
			t.Errorf("runSFU(%v) succeeded", args)
		}
	}
}

// A token key shorter than 32 bytes is refused before anything listens.
func TestSFUTokenKeyAtLeast32Bytes(t *testing.T) {
	for _, tc := range []struct {
		key string
		ok  bool
	}{
		{"k", false},
		{strings.Repeat("k", 31), false},
		{strings.Repeat("k", 32), true},
	} {
		f := sfuFlags{tokenKey: tc.key, maxPart: 1, drain: time.Second, udpPort: 1}
		_, err := f.config()
		if (err == nil) != tc.ok {
			t.Errorf("%d-byte key: %v, want ok=%v", len(tc.key), err, tc.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "at least 32 are required") {
			t.Errorf("%d-byte key: %q does not say why", len(tc.key), err)
		}
	}
}

// Requests without Origin are refused unless --allow-no-origin (or
// MEETING_ALLOW_NO_ORIGIN) says otherwise.
func TestSFUAllowNoOriginFlag(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  string
		want bool
	}{
		{nil, "", false},
		{[]string{"--allow-no-origin"}, "", true},
		{nil, "true", true},
	} {
		t.Setenv("MEETING_ALLOW_NO_ORIGIN", tc.env)
		var f sfuFlags
		fs := newFlagSet("meeting sfu", "", io.Discard, "")
		f.register(fs)
		if err := parseFlags(fs, append([]string{"--token-key", strings.Repeat("k", 32)}, tc.args...)); err != nil {
			t.Fatal(err)
		}
		cfg, err := f.config()
		if err != nil {
			t.Fatal(err)
		}
		if cfg.AllowNoOrigin != tc.want {
			t.Errorf("args %v, env %q: AllowNoOrigin %v, want %v", tc.args, tc.env, cfg.AllowNoOrigin, tc.want)
		}
	}
}
