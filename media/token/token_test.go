package token

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func TestMintVerify(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	now := time.Unix(1_800_000_000, 0)
	tok, err := Mint(key, Claims{Room: "r1", User: "42", Name: "Ada", IssuedAt: now}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Verify(key, tok, "r1", now.Add(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if c.Room != "r1" || c.User != "42" || c.Name != "Ada" || !c.ExpiresAt.Equal(now.Add(time.Minute)) || !c.IssuedAt.Equal(now) {
		t.Fatalf("claims = %+v", c)
	}
	if _, err := Verify(key, tok, "", now); err != nil {
		t.Fatalf("any room: %v", err)
	}

	none := jwt.NewWithClaims(jwt.SigningMethodNone, jwtClaims{Room: "r1", RegisteredClaims: jwt.RegisteredClaims{
		Subject: "42", ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour))}})
	noneTok, err := none.SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	otherKey, _ := Mint([]byte("another key of the same length!!"), Claims{Room: "r1", User: "42", IssuedAt: now}, time.Minute)
	noExp, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwtClaims{Room: "r1", RegisteredClaims: jwt.RegisteredClaims{Subject: "42"}}).SignedString(key)
	parts := strings.Split(tok, ".")
	tampered := parts[0] + "." + parts[1] + "x." + parts[2]

	for _, tc := range []struct {
		name string
		tok  string
		room string
		at   time.Time
		want error
	}{
		{"expired", tok, "r1", now.Add(time.Minute), ErrExpired},
		{"wrong room", tok, "r2", now, ErrWrongRoom},
		{"forged key", otherKey, "r1", now, ErrInvalid},
		{"alg none", noneTok, "r1", now, ErrInvalid},
		{"no exp", noExp, "r1", now, ErrInvalid},
		{"tampered", tampered, "r1", now, ErrInvalid},
		{"garbage", "not a token", "r1", now, ErrInvalid},
		{"empty", "", "r1", now, ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Verify(key, tc.tok, tc.room, tc.at); !errors.Is(err, tc.want) {
				t.Fatalf("Verify = %v, want %v", err, tc.want)
			}
		})
	}
	if _, err := Verify(nil, tok, "r1", now); !errors.Is(err, ErrNoKey) {
		t.Fatalf("empty key: %v", err)
	}
	if _, err := Mint(nil, Claims{Room: "r", User: "u"}, time.Minute); !errors.Is(err, ErrNoKey) {
		t.Fatalf("mint empty key: %v", err)
	}
	if _, err := Mint(key, Claims{User: "u"}, time.Minute); err == nil {
		t.Fatal("mint without room succeeded")
	}
}
