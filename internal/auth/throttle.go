package auth

import (
	"context"
	"strings"
	"sync"
	"time"
)

// LoginThrottleConfig sets the budgets of a LoginThrottle. Zero fields take
// the defaults of DefaultLoginThrottle.
type LoginThrottleConfig struct {
	// PairBurst attempts per (address, username), refilled one every
	// PairEvery. It is what stops guessing one account from one address.
	PairBurst int
	PairEvery time.Duration
	// AddressBurst attempts per address over all usernames, refilled one
	// every AddressEvery. It stops one address from trying many accounts.
	AddressBurst int
	AddressEvery time.Duration
	// UserBurst failed attempts per username over all addresses, refilled
	// one every UserEvery. Once they are spent, every attempt at that
	// username waits (see UserDelay) but none is refused.
	UserBurst int
	UserEvery time.Duration
	// UserDelay caps the wait of an attempt at a username whose failures are
	// spent.
	UserDelay time.Duration
	// MaxKeys caps the keys each of the three limiters remembers.
	MaxKeys int
}

// DefaultLoginThrottle is the throttle's configuration by default: 10
// attempts per address and username then one per 6 s (as the API had per
// username), 30 per address then one per 2 s, and after 20 failures at one
// username from anywhere, one more failure per 30 s before attempts wait up
// to 1 s.
var DefaultLoginThrottle = LoginThrottleConfig{
	PairBurst: 10, PairEvery: 6 * time.Second,
	AddressBurst: 30, AddressEvery: 2 * time.Second,
	UserBurst: 20, UserEvery: 30 * time.Second,
	UserDelay: time.Second,
	MaxKeys:   DefaultMaxKeys,
}

// LoginThrottle limits password guessing without letting anyone lock a user
// out. It counts attempts per (client address, username) and per address —
// these refuse — and failures per username from any address, which only slow:
// an attacker spending a username's failures from many addresses makes each
// attempt at it wait, but the right password from an address that has
// attempts left still logs in.
//
// How the server uses it, in the login handler, after validating the input:
//
//	wait, ok := throttle.Check(addr, username)
//	if !ok {
//		// 429, with Retry-After: ceil(wait) seconds; do not check the password
//	}
//	if wait > 0 {
//		// sleep wait, or give up when the request's context ends
//	}
//	// check the password, then exactly one of:
//	throttle.Success(addr, username) // right password
//	throttle.Failure(addr, username) // wrong password, or no such user
//
// addr is the client address as the server trusts it (gin's ClientIP);
// usernames are compared without case. The same throttle, with the caller's
// own address, suits a password change (old password checked). Start Run once
// with the server's context so idle keys are forgotten in the background.
type LoginThrottle struct {
	cfg                 LoginThrottleConfig
	pair, address, user *Limiter
}

// NewLoginThrottle returns a throttle with cfg's budgets (defaults for zero
// fields); now is the clock, time.Now when nil.
func NewLoginThrottle(cfg LoginThrottleConfig, now func() time.Time) *LoginThrottle {
	d := DefaultLoginThrottle
	set := func(v *int, def int) {
		if *v <= 0 {
			*v = def
		}
	}
	setD := func(v *time.Duration, def time.Duration) {
		if *v <= 0 {
			*v = def
		}
	}
	set(&cfg.PairBurst, d.PairBurst)
	set(&cfg.AddressBurst, d.AddressBurst)
	set(&cfg.UserBurst, d.UserBurst)
	set(&cfg.MaxKeys, d.MaxKeys)
	setD(&cfg.PairEvery, d.PairEvery)
	setD(&cfg.AddressEvery, d.AddressEvery)
	setD(&cfg.UserEvery, d.UserEvery)
	setD(&cfg.UserDelay, d.UserDelay)
	keys := WithMaxKeys(cfg.MaxKeys)
	return &LoginThrottle{
		cfg:     cfg,
		pair:    NewLimiter(cfg.PairBurst, cfg.PairEvery, now, keys),
		address: NewLimiter(cfg.AddressBurst, cfg.AddressEvery, now, keys),
		user:    NewLimiter(cfg.UserBurst, cfg.UserEvery, now, keys),
	}
}

func pairKey(addr, user string) string { return addr + "\x00" + strings.ToLower(user) }

// Check says whether an attempt to log in as user from addr may go on. When
// it may (ok), it takes one attempt from the address's and the pair's budget,
// and wait is how long the server must wait before checking the password (zero
// unless the user's failures are spent; at most UserDelay). When it may not,
// nothing is taken and wait is how long until it may (for Retry-After).
func (t *LoginThrottle) Check(addr, user string) (wait time.Duration, ok bool) {
	pk := pairKey(addr, user)
	if w := max(t.pair.Wait(pk), t.address.Wait(addr)); w > 0 {
		return w, false
	}
	// Both have an attempt; a concurrent attempt may take the last one in
	// between, which only refuses this one.
	if w, ok := t.address.Take(addr); !ok {
		return w, false
	}
	if w, ok := t.pair.Take(pk); !ok {
		return w, false
	}
	return min(t.user.Wait(strings.ToLower(user)), t.cfg.UserDelay), true
}

// Success records a right password: the pair's budget is full again, so a
// user who mistyped a few times is not held back the next time.
func (t *LoginThrottle) Success(addr, user string) {
	t.pair.Forget(pairKey(addr, user))
}

// Failure records a wrong password (or an unknown username): it spends one
// of the username's failures.
func (t *LoginThrottle) Failure(addr, user string) {
	t.user.Spend(strings.ToLower(user))
}

// Run forgets idle keys in the background until ctx is done.
func (t *LoginThrottle) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, l := range []*Limiter{t.pair, t.address, t.user} {
		wg.Go(func() { l.Run(ctx) })
	}
	wg.Wait()
}

// Len is how many keys the throttle remembers, over its three limiters.
func (t *LoginThrottle) Len() int { return t.pair.Len() + t.address.Len() + t.user.Len() }
