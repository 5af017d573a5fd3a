package turn

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/pion/logging"
	"golang.org/x/time/rate"
)

// pionLogs adapts pion's leveled loggers to slog. pion reports each datagram
// it cannot handle at error level, so that a client can make it log at will:
// its errors become warnings, and warnings and errors are rate limited.
type pionLogs struct {
	log *slog.Logger
}

func (f pionLogs) NewLogger(scope string) logging.LeveledLogger {
	return &pionLogger{log: f.log.With("scope", "pion/"+scope), limit: rate.NewLimiter(5, 20)}
}

type pionLogger struct {
	log   *slog.Logger
	limit *rate.Limiter
}

func (l *pionLogger) enabled(level slog.Level, limited bool) bool {
	return l.log.Enabled(context.Background(), level) && (!limited || l.limit.Allow())
}

func (l *pionLogger) emit(level slog.Level, limited bool, msg string) {
	if l.enabled(level, limited) {
		l.log.Log(context.Background(), level, msg)
	}
}

func (l *pionLogger) emitf(level slog.Level, limited bool, format string, args ...any) {
	if l.enabled(level, limited) {
		l.log.Log(context.Background(), level, fmt.Sprintf(format, args...))
	}
}

func (l *pionLogger) Trace(msg string)               { l.emit(slog.LevelDebug-4, false, msg) }
func (l *pionLogger) Tracef(format string, a ...any) { l.emitf(slog.LevelDebug-4, false, format, a...) }
func (l *pionLogger) Debug(msg string)               { l.emit(slog.LevelDebug, false, msg) }
func (l *pionLogger) Debugf(format string, a ...any) { l.emitf(slog.LevelDebug, false, format, a...) }
func (l *pionLogger) Info(msg string)                { l.emit(slog.LevelInfo, false, msg) }
func (l *pionLogger) Infof(format string, a ...any)  { l.emitf(slog.LevelInfo, false, format, a...) }
func (l *pionLogger) Warn(msg string)                { l.emit(slog.LevelWarn, true, msg) }
func (l *pionLogger) Warnf(format string, a ...any)  { l.emitf(slog.LevelWarn, true, format, a...) }
func (l *pionLogger) Error(msg string)               { l.emit(slog.LevelWarn, true, msg) }
func (l *pionLogger) Errorf(format string, a ...any) { l.emitf(slog.LevelWarn, true, format, a...) }
