package sfu

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/pion/logging"
)

// pionLogs routes pion's logs into slog. pion warns about routine events
// (a packet for a closed stream, a ping before candidates), so its warnings
// are logged at debug and only its errors at warn.
type pionLogs struct{ log *slog.Logger }

func (f pionLogs) NewLogger(scope string) logging.LeveledLogger {
	return pionLogger{log: f.log.With("pion", scope)}
}

type pionLogger struct{ log *slog.Logger }

func (l pionLogger) at(level slog.Level, msg string) {
	l.log.Log(context.Background(), level, msg)
}

func (l pionLogger) Trace(msg string)                          {}
func (l pionLogger) Tracef(format string, args ...interface{}) {}
func (l pionLogger) Debug(msg string)                          { l.at(slog.LevelDebug-4, msg) }
func (l pionLogger) Debugf(format string, args ...interface{}) {
	if l.log.Enabled(context.Background(), slog.LevelDebug-4) {
		l.at(slog.LevelDebug-4, fmt.Sprintf(format, args...))
	}
}
func (l pionLogger) Info(msg string) { l.at(slog.LevelDebug, msg) }
func (l pionLogger) Infof(format string, args ...interface{}) {
	if l.log.Enabled(context.Background(), slog.LevelDebug) {
		l.at(slog.LevelDebug, fmt.Sprintf(format, args...))
	}
}
func (l pionLogger) Warn(msg string) { l.at(slog.LevelDebug, msg) }
func (l pionLogger) Warnf(format string, args ...interface{}) {
	if l.log.Enabled(context.Background(), slog.LevelDebug) {
		l.at(slog.LevelDebug, fmt.Sprintf(format, args...))
	}
}
func (l pionLogger) Error(msg string) { l.at(slog.LevelWarn, msg) }
func (l pionLogger) Errorf(format string, args ...interface{}) {
	l.at(slog.LevelWarn, fmt.Sprintf(format, args...))
}
