package auth

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Limiter allows each key (a client address, a username) a burst of
// attempts refilled at a steady rate. Keys idle for longer than a full
// refill are forgotten, so the map stays as small as the set of active keys.
type Limiter struct {
	every time.Duration
	burst int
	now   func() time.Time

	mu      sync.Mutex
	keys    map[string]*limiterEntry
	sweptAt time.Time
}

type limiterEntry struct {
	lim  *rate.Limiter
	seen time.Time
}

// NewLimiter allows burst attempts per key, refilled one every `every`.
func NewLimiter(burst int, every time.Duration, now func() time.Time) *Limiter {
	if now == nil {
		now = time.Now
	}
	return &Limiter{every: every, burst: burst, now: now, keys: map[string]*limiterEntry{}}
}

// Allow reports whether every key may make one more attempt now, and takes
// one attempt from each when they all may.
func (l *Limiter) Allow(keys ...string) bool {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweep(now)
	entries := make([]*limiterEntry, len(keys))
	for i, k := range keys {
		e := l.keys[k]
		if e == nil {
			e = &limiterEntry{lim: rate.NewLimiter(rate.Every(l.every), l.burst)}
			l.keys[k] = e
		}
		e.seen = now
		entries[i] = e
	}
	for _, e := range entries {
		if e.lim.TokensAt(now) < 1 {
			return false
		}
	}
	for _, e := range entries {
		e.lim.AllowN(now, 1)
	}
	return true
}

// sweep forgets keys that have refilled completely.
func (l *Limiter) sweep(now time.Time) {
	idle := l.every * time.Duration(l.burst)
	if now.Sub(l.sweptAt) < idle {
		return
	}
	l.sweptAt = now
	for k, e := range l.keys {
		if now.Sub(e.seen) > idle {
			delete(l.keys, k)
		}
	}
}

// Len is how many keys are remembered.
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.keys)
}
