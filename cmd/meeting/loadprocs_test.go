package main

import (
	"context"
	"log/slog"
	"net"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"meeting.dev/meeting/media/sfu"

	"meeting.dev/meeting/test/testbin"
)

// TestMain lets the test binary stand in for the meeting binary: with
// MEETING_TEST_AS_MAIN=1 it runs main, as loadtest --procs re-runs itself.
func TestMain(m *testing.M) {
	if os.Getenv("MEETING_TEST_AS_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestLoadtestSpreadsSubscribersOverProcesses(t *testing.T) {
	const key = "0123456789abcdef0123456789abcdef"
	udp, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	s, err := sfu.New(sfu.Config{Keys: func(string) ([]byte, error) { return []byte(key), nil },
		Logger: slog.New(slog.DiscardHandler)}, udp)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("MEETING_LOADTEST_EXE", exe)
	t.Setenv("MEETING_TEST_AS_MAIN", "1")
	t.Setenv("MEETING_TOKEN_KEY", key)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out testbin.Buffer
	err = runLoadtest(ctx, []string{"--url", "ws" + strings.TrimPrefix(srv.URL, "http"), "--room", "procs",
		"--publishers", "1", "--subscribers", "3", "--audio", "--duration", "1s", "--settle", "100ms",
		"--procs", "2", "--log-level", "warn"}, &out, &out)
	if err != nil {
		t.Fatalf("loadtest: %v\n%s", err, out.String())
	}
	for _, want := range []string{"publishers 1, subscribers 3, tracks 1", "3 process(es)", "own sockets dropped"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
