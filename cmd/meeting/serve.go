package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// maxHeaderBytes is net/http's own limit on a request's header (its 431 is
// put in the envelope by envelopeListener); the API answers 431 itself from
// 64 KiB, below it.
const maxHeaderBytes = 1 << 20

// serveHTTP listens on addr and serves h until ctx ends. Then it calls
// drain, when not nil (the SFU tells its participants and waits for them:
// the listener stays open meanwhile, so that probes see the draining), and
// shuts the server down. drain and the shutdown share grace. An error of the
// listener or the server is returned at once, without draining.
func serveHTTP(ctx context.Context, log *slog.Logger, addr string, h http.Handler, grace time.Duration, drain func(context.Context)) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{Handler: h, MaxHeaderBytes: maxHeaderBytes,
		ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 60 * time.Second, IdleTimeout: 120 * time.Second,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(envelopeListener{ln}) }()
	log.Info("listening", "addr", "http://"+ln.Addr().String())
	select {
	case err := <-errc:
		return fmt.Errorf("serve HTTP: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down", "grace", grace)
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if drain != nil {
		drain(sctx)
	}
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shut down HTTP: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve HTTP: %w", err)
	}
	return nil
}
