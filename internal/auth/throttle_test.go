package auth

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// Guessing from many addresses must not lock the user out: the right password
// from a fresh address still logs in, at most UserDelay later.
func TestLoginThrottleNoLockout(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	cfg := LoginThrottleConfig{PairBurst: 3, PairEvery: time.Minute, AddressBurst: 5, AddressEvery: time.Minute,
		UserBurst: 4, UserEvery: time.Minute, UserDelay: time.Second}
	th := NewLoginThrottle(cfg, func() time.Time { return now })

	// One address guessing one user: refused after PairBurst attempts.
	for i := range 3 {
		if w, ok := th.Check("198.51.100.1", "alice"); !ok || w != 0 {
			t.Fatalf("attempt %d: %v, %v", i+1, w, ok)
		}
		th.Failure("198.51.100.1", "alice")
	}
	if w, ok := th.Check("198.51.100.1", "Alice"); ok || w <= 0 {
		t.Fatalf("4th attempt from one address at one user (any case): %v, %v; want refused with a wait", w, ok)
	}
	// The same address may still try another user, up to its own budget.
	if _, ok := th.Check("198.51.100.1", "bob"); !ok {
		t.Fatal("another user from the same address refused")
	}
	th.Success("198.51.100.1", "bob")
	if _, ok := th.Check("198.51.100.1", "carol"); !ok {
		t.Fatal("the 5th attempt from one address refused")
	}
	if _, ok := th.Check("198.51.100.1", "frank"); ok {
		t.Fatal("5 attempts from one address allowed a 6th")
	}

	// Many addresses keep spending alice's failures...
	for i := range 40 {
		addr := "203.0.113." + string(rune('a'+i%26)) + string(rune('a'+i/26))
		if _, ok := th.Check(addr, "alice"); !ok {
			t.Fatalf("first attempt from %s refused", addr)
		}
		th.Failure(addr, "alice")
	}
	// ...which slows, but never refuses, alice from a fresh address.
	w, ok := th.Check("192.0.2.9", "alice")
	if !ok {
		t.Fatal("the right password from a fresh address is locked out")
	}
	if w <= 0 || w > cfg.UserDelay {
		t.Fatalf("wait %v; want in (0, %v]", w, cfg.UserDelay)
	}
	th.Success("192.0.2.9", "alice")
	// Another user is not slowed.
	if w, ok := th.Check("192.0.2.9", "dave"); !ok || w != 0 {
		t.Fatalf("another user: %v, %v", w, ok)
	}

	// A success gives the pair its budget back.
	th2 := NewLoginThrottle(cfg, func() time.Time { return now })
	for range 3 {
		th2.Check("192.0.2.1", "erin")
	}
	th2.Success("192.0.2.1", "erin")
	if _, ok := th2.Check("192.0.2.1", "erin"); !ok {
		t.Fatal("a success must reset the address and user pair")
	}

	// Refused attempts remember nothing; keys stay under the cap.
	th3 := NewLoginThrottle(LoginThrottleConfig{MaxKeys: 100}, func() time.Time { return now })
	for i := range 1000 {
		u := strings.Repeat("u", 1000) + string(rune(i))
		th3.Check("192.0.2.2", u)
		th3.Failure("192.0.2.2", u)
	}
	if n := th3.Len(); n > 300 {
		t.Fatalf("%d keys kept; cap 3 × 100", n)
	}
}

func TestLoginThrottleRunStops(t *testing.T) {
	defer goleak.VerifyNone(t)
	th := NewLoginThrottle(LoginThrottleConfig{}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { th.Run(ctx); close(done) }()
	cancel()
	<-done
}
