package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"meeting.dev/meeting/internal/auth"
	"meeting.dev/meeting/internal/meeting"
	"meeting.dev/meeting/internal/server"
	"meeting.dev/meeting/internal/store"
)

func TestServeHTTPDrainsBeforeClosing(t *testing.T) {
	port, _ := freePorts(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	log := slog.New(slog.DiscardHandler)
	draining := make(chan struct{})
	release := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- serveHTTP(ctx, log, addr, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			_, _ = io.WriteString(w, "ok")
		}), 5*time.Second, func(context.Context) {
			close(draining)
			<-release
		})
	}()
	get := func() error {
		resp, err := http.Get("http://" + addr + "/")
		if err == nil {
			_ = resp.Body.Close()
		}
		return err
	}
	deadline := time.Now().Add(10 * time.Second)
	for get() != nil {
		if time.Now().After(deadline) {
			t.Fatal("server not up")
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	<-draining
	if err := get(); err != nil { // still served while draining
		t.Fatalf("request during drain: %v", err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("serveHTTP: %v", err)
	}
	if err := get(); err == nil {
		t.Fatal("served after shutdown")
	}

	// A taken address is an error at once.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := serveHTTP(context.Background(), log, ln.Addr().String(), http.NotFoundHandler(), time.Second, nil); err == nil {
		t.Fatal("serveHTTP on a taken address succeeded")
	}
}

// On a real listener, headers over the API's 64 KiB get the envelope; only
// those over net/http's own 1 MiB limit get its plain-text 431.
func TestServeHTTPHeaderLimits(t *testing.T) {
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	log := slog.New(slog.DiscardHandler)
	st, err := store.Open(ctx, "", t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	meetings, err := meeting.New(meeting.Config{Store: st, Rooms: noRooms{}, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := auth.NewTokens([]byte(strings.Repeat("k", 32)), time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	api, err := server.New(server.Config{Accounts: st, Meetings: meetings, Tokens: tokens, Hasher: auth.Hasher{Cost: 4},
		Log: log, Registry: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	port, _ := freePorts(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	done := make(chan error, 1)
	go func() { done <- serveHTTP(ctx, log, addr, api, 5*time.Second, nil) }()
	get := func(header int) (int, string, error) {
		req, _ := http.NewRequest("GET", "http://"+addr+"/ping", nil)
		req.Header.Set("X-Big", strings.Repeat("h", header))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), nil
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, _, err := get(1); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("server not up")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code, body, err := get(100 << 10); err != nil || code != 431 || !strings.HasPrefix(body, `{"code":431`) {
		t.Errorf("100 KiB header: %d %q %v; want 431 in the envelope", code, body, err)
	}
	if code, body, err := get(2 << 20); err == nil && (code != 431 || !strings.HasPrefix(body, `{"code":431,"msg":"431 Request Header Fields Too Large"`)) {
		t.Errorf("2 MiB header: %d %q; want net/http's 431 in the envelope", code, body)
	}
	// Requests net/http refuses before any handler runs get the envelope too.
	for _, c := range []struct {
		raw  string
		code int
	}{
		{"GET /ping HTTP/1.1 extra\r\nHost: x\r\n\r\n", 400},
		{"GET /ping HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n", 400},
		{"GET /ping HTTP/3.0\r\nHost: x\r\n\r\n", 505},
	} {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = conn.Write([]byte(c.raw))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("%q: %v", c.raw, err)
		}
		var env struct {
			Code int    `json:"code"`
			Msg  string `json:"msg"`
		}
		err = json.NewDecoder(resp.Body).Decode(&env)
		conn.Close()
		if err != nil || resp.StatusCode != c.code || env.Code != c.code || env.Msg == "" ||
			resp.Header.Get("Content-Type") != "application/json; charset=utf-8" {
			t.Errorf("%q: %d %+v %v (%s); want %d in the envelope", c.raw, resp.StatusCode, env, err, resp.Header.Get("Content-Type"), c.code)
		}
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
