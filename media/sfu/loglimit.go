package sfu

import (
	"context"
	"log/slog"
	"sync/atomic"

	"golang.org/x/time/rate"
)

// Per-connection log budget: a participant's records beyond it are
// dropped and counted; the next record let through says how many.
const (
	logBurst      = 10
	logPerSecond  = 2
	suppressedKey = "suppressed_logs"
)

// limitedHandler passes records to next while its budget allows and counts
// the others. Handlers derived by WithAttrs and WithGroup share the budget.
type limitedHandler struct {
	next    slog.Handler
	lim     *rate.Limiter
	dropped *atomic.Int64
}

// limitLogger returns a logger that writes through l's handler at most
// logBurst records at once and logPerSecond per second after.
func limitLogger(l *slog.Logger) *slog.Logger {
	return slog.New(&limitedHandler{next: l.Handler(), lim: rate.NewLimiter(logPerSecond, logBurst), dropped: new(atomic.Int64)})
}

func (h *limitedHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.next.Enabled(ctx, level)
}

func (h *limitedHandler) Handle(ctx context.Context, r slog.Record) error {
	if !h.lim.Allow() {
		h.dropped.Add(1)
		return nil
	}
	if n := h.dropped.Swap(0); n > 0 {
		r = r.Clone()
		r.AddAttrs(slog.Int64(suppressedKey, n))
	}
	return h.next.Handle(ctx, r)
}

func (h *limitedHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &limitedHandler{next: h.next.WithAttrs(as), lim: h.lim, dropped: h.dropped}
}

func (h *limitedHandler) WithGroup(name string) slog.Handler {
	return &limitedHandler{next: h.next.WithGroup(name), lim: h.lim, dropped: h.dropped}
}
