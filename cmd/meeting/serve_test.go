package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"
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
