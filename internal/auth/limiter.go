package auth

import (
	"container/list"
	"context"
	"crypto/sha256"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

const (
	// DefaultMaxKeys is how many keys a Limiter remembers unless told
	// otherwise: about 2 MB at most.
	DefaultMaxKeys = 10_000

	// MaxKeyBytes is the longest key a Limiter stores as it is; a longer
	// key is stored as its SHA-256, so no key costs more than this.
	MaxKeyBytes = 128
)

// Limiter allows each key (a client address, an address and username) a
// burst of attempts refilled at a steady rate.
//
// Its memory is bounded: it remembers at most MaxKeys keys, each of at most
// MaxKeyBytes bytes (longer keys are hashed). A key is remembered only once it
// has spent an attempt: a refused attempt adds nothing. A key whose budget has
// refilled completely is forgotten, which loses nothing (a forgotten key
// starts full); Run does this in the background, and every call does it for
// the oldest keys. When MaxKeys keys are remembered and none is idle, the
// least recently used is forgotten to make room — under a flood of that many
// distinct keys, an old key may get its budget back early.
type Limiter struct {
	every   time.Duration
	burst   int
	maxKeys int
	now     func() time.Time

	mu   sync.Mutex
	keys map[string]*list.Element // of *limiterEntry
	lru  list.List                // most recently used first
}

type limiterEntry struct {
	key  string
	lim  *rate.Limiter
	seen time.Time
}

// LimiterOption configures a Limiter.
type LimiterOption func(*Limiter)

// WithMaxKeys caps how many keys the Limiter remembers (DefaultMaxKeys
// otherwise); n below 1 is taken as 1.
func WithMaxKeys(n int) LimiterOption {
	return func(l *Limiter) { l.maxKeys = max(n, 1) }
}

// NewLimiter allows burst attempts per key, refilled one every `every`. now
// is the clock (time.Now when nil).
func NewLimiter(burst int, every time.Duration, now func() time.Time, opts ...LimiterOption) *Limiter {
	if now == nil {
		now = time.Now
	}
	l := &Limiter{every: every, burst: max(burst, 1), maxKeys: DefaultMaxKeys, now: now, keys: map[string]*list.Element{}}
	for _, o := range opts {
		o(l)
	}
	return l
}

// storedKey is the key as it is remembered: itself, or its SHA-256 when it
// is longer than MaxKeyBytes (with a leading 0xff, which no UTF-8 key has).
func storedKey(k string) string {
	if len(k) <= MaxKeyBytes {
		return k
	}
	sum := sha256.Sum256([]byte(k))
	return "\xff" + string(sum[:])
}

// Allow reports whether every key may make one more attempt now, and takes
// one attempt from each when they all may.
func (l *Limiter) Allow(keys ...string) bool {
	_, ok := l.Take(keys...)
	return ok
}

// Take is Allow that also says, when it refuses, how long until every key
// has an attempt again (for a Retry-After header).
func (l *Limiter) Take(keys ...string) (wait time.Duration, ok bool) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.expireLocked(now)
	stored := make([]string, len(keys))
	for i, k := range keys {
		stored[i] = storedKey(k)
		if w := l.waitLocked(stored[i], now); w > wait {
			wait = w
		}
	}
	if wait > 0 {
		return wait, false
	}
	for _, k := range stored {
		l.entryLocked(k, now).lim.AllowN(now, 1)
	}
	return 0, true
}

// Wait is how long until key has an attempt; zero when it has one now. It
// takes nothing and remembers nothing.
func (l *Limiter) Wait(key string) time.Duration {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.waitLocked(storedKey(key), now)
}

// Spend takes one attempt from key if it has one; it reports whether it had.
// Use it to count an event (a failed login) without refusing anything.
func (l *Limiter) Spend(key string) bool {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.expireLocked(now)
	k := storedKey(key)
	if l.waitLocked(k, now) > 0 {
		l.entryLocked(k, now) // still in use: keep it young
		return false
	}
	return l.entryLocked(k, now).lim.AllowN(now, 1)
}

// Forget gives key its full budget back.
func (l *Limiter) Forget(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e, ok := l.keys[storedKey(key)]; ok {
		l.removeLocked(e)
	}
}

// waitLocked is how long until stored key k has one attempt.
func (l *Limiter) waitLocked(k string, now time.Time) time.Duration {
	e, ok := l.keys[k]
	if !ok {
		return 0
	}
	missing := 1 - e.Value.(*limiterEntry).lim.TokensAt(now)
	if missing <= 0 {
		return 0
	}
	return time.Duration(missing * float64(l.every))
}

// entryLocked returns the entry of stored key k, made the most recently
// used, creating it (and making room for it) when needed.
func (l *Limiter) entryLocked(k string, now time.Time) *limiterEntry {
	if el, ok := l.keys[k]; ok {
		e := el.Value.(*limiterEntry)
		e.seen = now
		l.lru.MoveToFront(el)
		return e
	}
	for len(l.keys) >= l.maxKeys {
		l.removeLocked(l.lru.Back())
	}
	e := &limiterEntry{key: k, lim: rate.NewLimiter(rate.Every(l.every), l.burst), seen: now}
	l.keys[k] = l.lru.PushFront(e)
	return e
}

func (l *Limiter) removeLocked(el *list.Element) {
	delete(l.keys, el.Value.(*limiterEntry).key)
	l.lru.Remove(el)
}

// idle is how long after its last use a key's budget is full again.
func (l *Limiter) idle() time.Duration { return l.every * time.Duration(l.burst) }

// expireLocked forgets the keys whose budget has refilled completely. The
// list is in order of last use, so it stops at the first key still in use.
func (l *Limiter) expireLocked(now time.Time) {
	idle := l.idle()
	for el := l.lru.Back(); el != nil; el = l.lru.Back() {
		if now.Sub(el.Value.(*limiterEntry).seen) < idle {
			return
		}
		l.removeLocked(el)
	}
}

// Expire forgets the keys whose budget has refilled completely.
func (l *Limiter) Expire() {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.expireLocked(now)
}

// Run forgets idle keys in the background, every `every` (at least once a
// second, at most once a minute), until ctx is done. Start it once with the
// server's context: `go limiter.Run(ctx)`.
func (l *Limiter) Run(ctx context.Context) {
	period := min(max(l.every, time.Second), time.Minute)
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			l.Expire()
		}
	}
}

// Len is how many keys are remembered.
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.keys)
}
