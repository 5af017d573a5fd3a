// Package pionlog routes the logs of pion's libraries (webrtc, ice, turn)
// into slog, for the SFU, the TURN server and the Go client.
//
// pion logs routine events loudly: it warns about a packet for a closed
// stream or a ping before candidates, and pion/turn reports every datagram it
// cannot handle as an error, so that any client can make it log at will. So
// pion's levels are shifted down: trace and debug go to slog's debug-8 and
// debug-4, info and warnings to debug, errors to warn. Warnings and errors
// are rate limited per logger (a burst of 20, then 5 a second).
package pionlog

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/pion/logging"
	"golang.org/x/time/rate"
)

// Levels pion's messages are logged at.
const (
	LevelTrace = slog.LevelDebug - 8
	LevelDebug = slog.LevelDebug - 4
	LevelInfo  = slog.LevelDebug
	LevelWarn  = slog.LevelDebug
	LevelError = slog.LevelWarn
)

// Rate limit of warnings and errors, per logger.
const (
	limitPerSecond = 5
	limitBurst     = 20
)

// Factory is a logging.LoggerFactory writing to an slog.Logger.
type Factory struct {
	log *slog.Logger
}

var _ logging.LoggerFactory = Factory{}

// New returns a factory whose loggers write to log; a nil log discards
// everything.
func New(log *slog.Logger) Factory {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return Factory{log: log}
}

// NewLogger returns the logger of one pion scope ("ice", "pc", "turn", …).
func (f Factory) NewLogger(scope string) logging.LeveledLogger {
	log := f.log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &logger{log: log.With("pion", scope), limit: rate.NewLimiter(limitPerSecond, limitBurst)}
}

type logger struct {
	log   *slog.Logger
	limit *rate.Limiter
}

func (l *logger) enabled(level slog.Level, limited bool) bool {
	return l.log.Enabled(context.Background(), level) && (!limited || l.limit.Allow())
}

func (l *logger) emit(level slog.Level, limited bool, msg string) {
	if l.enabled(level, limited) {
		l.log.Log(context.Background(), level, msg)
	}
}

func (l *logger) emitf(level slog.Level, limited bool, format string, args ...any) {
	if l.enabled(level, limited) {
		l.log.Log(context.Background(), level, fmt.Sprintf(format, args...))
	}
}

func (l *logger) Trace(msg string)               { l.emit(LevelTrace, false, msg) }
func (l *logger) Tracef(format string, a ...any) { l.emitf(LevelTrace, false, format, a...) }
func (l *logger) Debug(msg string)               { l.emit(LevelDebug, false, msg) }
func (l *logger) Debugf(format string, a ...any) { l.emitf(LevelDebug, false, format, a...) }
func (l *logger) Info(msg string)                { l.emit(LevelInfo, false, msg) }
func (l *logger) Infof(format string, a ...any)  { l.emitf(LevelInfo, false, format, a...) }
func (l *logger) Warn(msg string)                { l.emit(LevelWarn, true, msg) }
func (l *logger) Warnf(format string, a ...any)  { l.emitf(LevelWarn, true, format, a...) }
func (l *logger) Error(msg string)               { l.emit(LevelError, true, msg) }
func (l *logger) Errorf(format string, a ...any) { l.emitf(LevelError, true, format, a...) }
