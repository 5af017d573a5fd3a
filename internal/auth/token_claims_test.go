package auth

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func TestTokenClaimsChecked(t *testing.T) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	secret := []byte(strings.Repeat("s", 32))
	tk, err := NewTokens(secret, 24*time.Hour, func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	sign := func(c jwt.MapClaims) string {
		c["iss"] = "meeting"
		s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(secret)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	at := func(d time.Duration) int64 { return now.Add(d).Unix() }
	for _, c := range []struct {
		name string
		c    jwt.MapClaims
		ok   bool
	}{
		{"plain", jwt.MapClaims{"sub": "7", "iat": at(0), "exp": at(time.Hour)}, true},
		{"largest id", jwt.MapClaims{"sub": "9223372036854775807", "iat": at(0), "exp": at(time.Hour)}, true},
		{"iat within the skew", jwt.MapClaims{"sub": "7", "iat": at(30 * time.Second), "exp": at(time.Hour)}, true},
		{"whole lifetime", jwt.MapClaims{"sub": "7", "iat": at(-time.Hour), "exp": at(23 * time.Hour)}, true},

		{"sub over int64", jwt.MapClaims{"sub": "9223372036854775808", "iat": at(0), "exp": at(time.Hour)}, false},
		{"sub max uint64", jwt.MapClaims{"sub": "18446744073709551615", "iat": at(0), "exp": at(time.Hour)}, false},
		{"sub over uint64", jwt.MapClaims{"sub": "99999999999999999999", "iat": at(0), "exp": at(time.Hour)}, false},
		{"sub negative", jwt.MapClaims{"sub": "-1", "iat": at(0), "exp": at(time.Hour)}, false},
		{"sub zero-padded", jwt.MapClaims{"sub": "007", "iat": at(0), "exp": at(time.Hour)}, false},
		{"sub zero", jwt.MapClaims{"sub": "0", "iat": at(0), "exp": at(time.Hour)}, false},
		{"iat in the future", jwt.MapClaims{"sub": "7", "iat": at(2 * time.Minute), "exp": at(time.Hour)}, false},
		{"iat a year ahead", jwt.MapClaims{"sub": "7", "iat": at(365 * 24 * time.Hour), "exp": at(366 * 24 * time.Hour)}, false},
		{"no iat", jwt.MapClaims{"sub": "7", "exp": at(time.Hour)}, false},
		{"lifetime over the configured one", jwt.MapClaims{"sub": "7", "iat": at(0), "exp": at(24*time.Hour + time.Second)}, false},
		{"exp a century away", jwt.MapClaims{"sub": "7", "iat": at(0), "exp": at(100 * 365 * 24 * time.Hour)}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := tk.Parse(sign(c.c))
			if c.ok && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if !c.ok && !errors.Is(err, ErrBadToken) {
				t.Fatalf("got %v, want ErrBadToken", err)
			}
		})
	}
	if _, err := NewTokens(secret, MaxTokenLifetime+time.Second, nil); err == nil {
		t.Errorf("a lifetime over %s must be refused", MaxTokenLifetime)
	}
	if _, err := NewTokens(secret, MaxTokenLifetime, nil); err != nil {
		t.Errorf("a lifetime of %s: %v", MaxTokenLifetime, err)
	}
}

// A password change increments the user's token generation; tokens of an
// older generation are revoked.
func TestTokenGeneration(t *testing.T) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	tk, _ := NewTokens([]byte(strings.Repeat("s", 32)), time.Hour, func() time.Time { return now })
	old, _, _ := tk.Issue(Identity{UserID: 7, Username: "alice"})
	fresh, _, _ := tk.Issue(Identity{UserID: 7, Username: "alice", Generation: 1})
	idOld, err := tk.Parse(old)
	if err != nil || idOld.Generation != 0 || !idOld.IssuedAt.Equal(now) {
		t.Fatalf("Parse(old) = %+v, %v", idOld, err)
	}
	idFresh, err := tk.Parse(fresh)
	if err != nil || idFresh.Generation != 1 {
		t.Fatalf("Parse(fresh) = %+v, %v", idFresh, err)
	}
	if err := CheckGeneration(idOld, 0); err != nil {
		t.Errorf("generation 0 token before any change: %v", err)
	}
	err = CheckGeneration(idOld, 1)
	if !errors.Is(err, ErrRevoked) || !errors.Is(err, ErrBadToken) {
		t.Errorf("old token after a change: %v, want ErrRevoked (an ErrBadToken)", err)
	}
	if err := CheckGeneration(idFresh, 1); err != nil {
		t.Errorf("token issued after the change: %v", err)
	}
}
