package auth

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/crypto/bcrypt"
)

func TestHasher(t *testing.T) {
	h := Hasher{Cost: bcrypt.MinCost}
	hash, err := h.Hash("correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(hash, "$2a$") {
		t.Fatalf("not a bcrypt hash: %q", hash)
	}
	for _, tc := range []struct {
		name, hash, password string
		rehash               bool
		err                  error
	}{
		{"bcrypt right", hash, "correct horse", false, nil},
		{"bcrypt wrong", hash, "wrong horse", false, ErrBadPassword},
		{"seed md5 right", "8017d0408f41b75489701e3fb1c3e773", "1233456", true, nil},
		{"seed md5 upper-case hex", "8017D0408F41B75489701E3FB1C3E773", "1233456", true, nil},
		{"seed md5 wrong", "8017d0408f41b75489701e3fb1c3e773", "123456", false, ErrBadPassword},
		{"weaker cost", mustHash(t, Hasher{Cost: bcrypt.MinCost}, "pw"), "pw", false, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rehash, err := h.Verify(tc.hash, tc.password)
			if !errors.Is(err, tc.err) || rehash != tc.rehash {
				t.Fatalf("Verify = %v, %v; want %v, %v", rehash, err, tc.rehash, tc.err)
			}
		})
	}
	if rehash, err := (Hasher{Cost: bcrypt.MinCost + 1}).Verify(hash, "correct horse"); err != nil || !rehash {
		t.Errorf("a hash below the configured cost should ask for a rehash: %v, %v", rehash, err)
	}
	if _, err := h.Hash(strings.Repeat("x", MaxPasswordBytes+1)); err == nil {
		t.Errorf("a password over %d bytes must be refused, not truncated", MaxPasswordBytes)
	}
}

func mustHash(t *testing.T, h Hasher, p string) string {
	t.Helper()
	s, err := h.Hash(p)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestTokens(t *testing.T) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	secret := []byte(strings.Repeat("s", 32))
	tk, err := NewTokens(secret, time.Hour, clock)
	if err != nil {
		t.Fatal(err)
	}
	tok, exp, err := tk.Issue(Identity{UserID: 7, Username: "alice"})
	if err != nil || !exp.Equal(now.Add(time.Hour)) {
		t.Fatalf("Issue: %v, exp %v", err, exp)
	}
	id, err := tk.Parse(tok)
	if err != nil || id != (Identity{UserID: 7, Username: "alice", IssuedAt: now}) {
		t.Fatalf("Parse = %+v, %v", id, err)
	}

	other, _ := NewTokens([]byte(strings.Repeat("o", 32)), time.Hour, clock)
	forged, _, _ := other.Issue(Identity{UserID: 7, Username: "alice"})
	later, _ := NewTokens(secret, time.Hour, func() time.Time { return now.Add(time.Hour + time.Second) })
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"sub": "7", "iss": "meeting", "exp": now.Add(time.Hour).Unix()}).
		SignedString(jwt.UnsafeAllowNoneSignatureType)
	noExp, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "7", "iss": "meeting"}).SignedString(secret)
	badSub, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "alice", "iss": "meeting", "exp": now.Add(time.Hour).Unix()}).SignedString(secret)
	seedStyle, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"id": 1, "name": "root"}).SignedString(secret)
	for name, c := range map[string]struct {
		tk  *Tokens
		tok string
	}{
		"forged": {tk, forged}, "expired": {later, tok}, "alg none": {tk, none}, "no expiry": {tk, noExp},
		"bad subject": {tk, badSub}, "seed token without expiry": {tk, seedStyle}, "garbage": {tk, "a.b.c"}, "empty": {tk, ""},
		"tampered": {tk, tok[:len(tok)-2] + "xx"},
	} {
		if _, err := c.tk.Parse(c.tok); !errors.Is(err, ErrBadToken) {
			t.Errorf("%s: got %v, want ErrBadToken", name, err)
		}
	}
	if _, err := NewTokens([]byte("short"), time.Hour, nil); err == nil {
		t.Error("a short secret must be refused")
	}
	if _, err := NewTokens(secret, 0, nil); err == nil {
		t.Error("a zero lifetime must be refused")
	}
}

func TestLimiter(t *testing.T) {
	now := time.Unix(0, 0)
	l := NewLimiter(3, 10*time.Second, func() time.Time { return now })
	for i := 0; i < 3; i++ {
		if !l.Allow("ip:a", "user:x") {
			t.Fatalf("attempt %d refused within the burst", i+1)
		}
	}
	if l.Allow("ip:a", "user:x") {
		t.Fatal("attempt over the burst allowed")
	}
	if l.Allow("ip:b", "user:x") {
		t.Fatal("a new address must not reset a username's budget")
	}
	if !l.Allow("ip:b", "user:y") {
		t.Fatal("a fresh address and user must be allowed")
	}
	now = now.Add(10 * time.Second)
	if !l.Allow("ip:a", "user:x") || l.Allow("ip:a", "user:x") {
		t.Fatal("one attempt should refill after 10s, and only one")
	}
	now = now.Add(time.Hour)
	l.Allow("ip:c")
	if n := l.Len(); n != 1 {
		t.Fatalf("idle keys kept: %d, want only ip:c", n)
	}
}
