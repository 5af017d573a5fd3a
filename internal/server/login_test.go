package server

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"meeting.dev/meeting/internal/auth"
	"meeting.dev/meeting/internal/store/storetest"
)

// Attempts are limited per address and username and per address, with a
// Retry-After that says when to come back.
func TestLoginIsRateLimited(t *testing.T) {
	h := newHarnessWith(t, storetest.Open(t, "sqlite"), harnessOptions{throttle: &auth.LoginThrottleConfig{
		PairBurst: 5, PairEvery: 12 * time.Second, AddressBurst: 8, AddressEvery: time.Minute}})
	h.user("alice") // one attempt of the address; the right password refills the pair
	for i := 0; i < 5; i++ {
		h.expect(h.do("POST", "/user/login", "", credentials{"alice", "wrong-pass"}), 401, "")
	}
	r := h.do("POST", "/user/login", "", credentials{"alice", "password-alice"})
	h.expect(r, 429, "too many login attempts")
	if got := r.Header.Get("Retry-After"); got != "12" {
		t.Errorf("Retry-After = %q, want 12 (seconds until the pair has an attempt)", got)
	}
	// The same address may still try another username, within its own budget.
	h.user("bob") // the address's 7th attempt
	h.expect(h.do("POST", "/user/login", "", credentials{"bob", "wrong-pass"}), 401, "")
	r = h.do("POST", "/user/login", "", credentials{"bob", "password-bob"})
	h.expect(r, 429, "too many login attempts")
	if got := r.Header.Get("Retry-After"); got != "60" {
		t.Errorf("Retry-After = %q, want 60 (seconds until the address has an attempt)", got)
	}
	// Another address is not held back by this one.
	h.expect(h.doWith("POST", "/user/login", "", credentials{"alice", "password-alice"}, from("198.51.100.7:1")), 200, "")
	h.advance(time.Minute)
	h.expect(h.do("POST", "/user/login", "", credentials{"alice", "password-alice"}), 200, "")
}

// Failures spread over many addresses slow attempts at a username but never
// refuse the right password from an address that has not been guessing.
func TestLoginCannotLockUserOut(t *testing.T) {
	h := newHarnessWith(t, storetest.Open(t, "sqlite"), harnessOptions{throttle: &auth.LoginThrottleConfig{
		PairBurst: 10, PairEvery: 6 * time.Second, AddressBurst: 30, AddressEvery: 2 * time.Second,
		UserBurst: 20, UserEvery: 30 * time.Second, UserDelay: 50 * time.Millisecond}})
	h.user("alice")
	for a := 1; a <= 5; a++ {
		attacker := from(fmt.Sprintf("198.51.100.%d:4000", a))
		for i := 0; i < 10; i++ {
			h.expect(h.doWith("POST", "/user/login", "", credentials{"alice", "guess-" + fmt.Sprint(i)}, attacker), 401, "")
		}
		h.expect(h.doWith("POST", "/user/login", "", credentials{"alice", "guess"}, attacker), 429, "too many")
	}
	// 50 failures spent alice's 20: attempts wait, but nobody is refused.
	start := time.Now()
	h.expect(h.doWith("POST", "/user/login", "", credentials{"alice", "password-alice"}, from("203.0.113.9:5000")), 200, "")
	if time.Since(start) < 50*time.Millisecond {
		t.Errorf("a login at a username whose failures are spent did not wait")
	}
	h.expect(h.do("POST", "/user/login", "", credentials{"alice", "password-alice"}), 200, "")
}

// Login input is validated before the throttle sees it: a flood of huge
// usernames is refused with 400 and leaves no key behind.
func TestLoginFloodOfLongUsernamesIsRefusedAtValidation(t *testing.T) {
	h := newHarness(t, storetest.Open(t, "sqlite"), nil)
	n := 20_000
	if testing.Short() || raceEnabled {
		n = 2_000 // the flood; 20,000 take two minutes under -race
	}
	name := strings.Repeat("u", 59<<10)
	heapInUse := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapInuse
	}
	before := heapInUse()
	for i := 0; i < n; i++ {
		body := fmt.Sprintf(`{"username":"%s%05d","password":"pw"}`, name, i)
		r := h.doWith("POST", "/user/login", "", body, from(fmt.Sprintf("198.51.%d.%d:1", i/250, i%250)))
		if r.Status != 400 || !strings.Contains(r.Msg, "username must be") {
			t.Fatalf("login %d with a %d-byte username: %d %q", i, len(name), r.Status, r.Msg)
		}
	}
	after := heapInUse()
	if got := h.throttle.Len(); got != 0 {
		t.Errorf("the throttle remembers %d keys after refused logins", got)
	}
	// 20,000 × 59 KB is 1.2 GB; keeping even 1% of it would pass 12 MB.
	if after > before+16<<20 {
		t.Errorf("heap in use grew from %d to %d bytes", before, after)
	}
}

// A password change revokes every token issued before it, and answers a
// new one.
func TestPasswordChangeRevokesTokens(t *testing.T) {
	forEachDialect(t, func(t *testing.T, h *harness) {
		first := h.user("alice")
		second := h.login("alice", "password-alice")
		r := h.do("PUT", "/auth/user/password", first, passwordChange{"password-alice", "n3w-password"})
		h.expect(r, 200, "")
		var fresh tokenReply
		h.decode(r, &fresh)
		for _, old := range []string{first, second} {
			h.expect(h.do("GET", "/auth/user/info", old, nil), 401, "token revoked")
			h.expect(h.do("PUT", "/auth/user/password", old, passwordChange{"n3w-password", "other-password"}), 401, "token revoked")
		}
		h.expect(h.do("GET", "/auth/user/info", fresh.Token, nil), 200, "")
		h.expect(h.do("GET", "/auth/user/info", h.login("alice", "n3w-password"), nil), 200, "")
		// Another user's tokens are not touched.
		bob := h.user("bob")
		r = h.do("PUT", "/auth/user/password", fresh.Token, passwordChange{"n3w-password", "third-password"})
		h.expect(r, 200, "")
		h.expect(h.do("GET", "/auth/user/info", fresh.Token, nil), 401, "token revoked")
		h.expect(h.do("GET", "/auth/user/info", bob, nil), 200, "")
	})
}

// login logs in and returns the token.
func (h *harness) login(name, password string) string {
	h.t.Helper()
	r := h.do("POST", "/user/login", "", credentials{name, password})
	h.expect(r, 200, "")
	var tok tokenReply
	h.decode(r, &tok)
	return tok.Token
}

// Registrations are limited per address: each costs a bcrypt hash, and a
// 409 tells that a name is taken.
func TestRegistrationIsRateLimited(t *testing.T) {
	h := newHarnessWith(t, storetest.Open(t, "sqlite"), harnessOptions{register: auth.NewLimiter(3, time.Minute, nil)})
	h.expect(h.do("POST", "/user/register", "", credentials{"alice", "password-alice"}), 200, "")
	h.expect(h.do("POST", "/user/register", "", credentials{"alice", "password-alice"}), 409, "taken")
	h.expect(h.do("POST", "/user/register", "", credentials{"bob", "password-bob"}), 200, "")
	r := h.do("POST", "/user/register", "", credentials{"carol", "password-carol"})
	h.expect(r, 429, "too many registrations")
	if got := r.Header.Get("Retry-After"); got != "60" {
		t.Errorf("Retry-After = %q, want 60", got)
	}
	// Invalid input is refused before it costs anything.
	h.expect(h.do("POST", "/user/register", "", credentials{"c", "password-carol"}), 400, "username must be")
	h.expect(h.doWith("POST", "/user/register", "", credentials{"carol", "password-carol"}, from("198.51.100.7:1")), 200, "")
}

// A password change checks the old password under the same throttle as a
// login, keyed by the caller's address and username.
func TestPasswordChangeIsThrottled(t *testing.T) {
	h := newHarnessWith(t, storetest.Open(t, "sqlite"), harnessOptions{throttle: &auth.LoginThrottleConfig{
		PairBurst: 3, PairEvery: 10 * time.Second, AddressBurst: 100, AddressEvery: time.Second}})
	tok := h.user("alice")
	for i := 0; i < 3; i++ {
		h.expect(h.do("PUT", "/auth/user/password", tok, passwordChange{"wrong-pass", "n3w-password"}), 403, "old_password is wrong")
	}
	r := h.do("PUT", "/auth/user/password", tok, passwordChange{"password-alice", "n3w-password"})
	h.expect(r, 429, "too many attempts")
	if got := r.Header.Get("Retry-After"); got != "10" {
		t.Errorf("Retry-After = %q, want 10", got)
	}
	h.advance(10 * time.Second)
	h.expect(h.do("PUT", "/auth/user/password", tok, passwordChange{"password-alice", "n3w-password"}), 200, "")
}
