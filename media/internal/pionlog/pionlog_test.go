package pionlog

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

func TestLevelsAndScope(t *testing.T) {
	for _, tc := range []struct {
		name  string
		min   slog.Level
		write func(f Factory) // logs "m" through one method
		want  bool
	}{
		{name: "error at warn", min: slog.LevelWarn, write: func(f Factory) { f.NewLogger("ice").Error("m") }, want: true},
		{name: "errorf at warn", min: slog.LevelWarn, write: func(f Factory) { f.NewLogger("ice").Errorf("%s", "m") }, want: true},
		{name: "warn hidden at info", min: slog.LevelInfo, write: func(f Factory) { f.NewLogger("ice").Warn("m") }, want: false},
		{name: "warn shown at debug", min: slog.LevelDebug, write: func(f Factory) { f.NewLogger("ice").Warnf("%s", "m") }, want: true},
		{name: "info shown at debug", min: slog.LevelDebug, write: func(f Factory) { f.NewLogger("ice").Info("m") }, want: true},
		{name: "debug hidden at debug", min: slog.LevelDebug, write: func(f Factory) { f.NewLogger("ice").Debug("m") }, want: false},
		{name: "debug shown at debug-4", min: LevelDebug, write: func(f Factory) { f.NewLogger("ice").Debugf("%s", "m") }, want: true},
		{name: "trace hidden at debug-4", min: LevelDebug, write: func(f Factory) { f.NewLogger("ice").Trace("m") }, want: false},
		{name: "trace shown at debug-8", min: LevelTrace, write: func(f Factory) { f.NewLogger("ice").Tracef("%s", "m") }, want: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			tc.write(New(slog.New(slog.NewTextHandler(&b, &slog.HandlerOptions{Level: tc.min}))))
			got := strings.Contains(b.String(), "msg=m") && strings.Contains(b.String(), "pion=ice")
			if got != tc.want {
				t.Fatalf("logged %q, want a line: %v", b.String(), tc.want)
			}
		})
	}
}

func TestErrorsRateLimited(t *testing.T) {
	var b bytes.Buffer
	l := New(slog.New(slog.NewTextHandler(&b, nil))).NewLogger("turn")
	for range 1000 {
		l.Error("flood")
	}
	if n := strings.Count(b.String(), "\n"); n < limitBurst || n > limitBurst+limitPerSecond {
		t.Fatalf("%d lines for a flood of 1000 errors, want about %d", n, limitBurst)
	}
}

func TestNilDiscards(t *testing.T) {
	New(nil).NewLogger("x").Errorf("%d", 1)
	Factory{}.NewLogger("x").Error("zero factory")
}
