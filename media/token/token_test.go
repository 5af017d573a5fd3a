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

// The role claim: absent for a participant, "host" for the meeting's
// host; any other value neither mints nor verifies.
func TestRole(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	now := time.Unix(1_800_000_000, 0)
	for _, role := range []string{"", RoleHost} {
		tok, err := Mint(key, Claims{Room: "r1", User: "42", Role: role, IssuedAt: now}, time.Minute)
		if err != nil {
			t.Fatalf("mint role %q: %v", role, err)
		}
		c, err := Verify(key, tok, "r1", now)
		if err != nil || c.Role != role {
			t.Fatalf("role %q: claims %+v, %v", role, c, err)
		}
		payload, err := jwt.NewParser().DecodeSegment(strings.Split(tok, ".")[1])
		if err != nil || strings.Contains(string(payload), `"role"`) != (role != "") {
			t.Errorf("role %q: payload %s, %v", role, payload, err)
		}
	}
	if _, err := Mint(key, Claims{Room: "r1", User: "42", Role: "admin", IssuedAt: now}, time.Minute); err == nil {
		t.Fatal("minted role admin")
	}
	forged, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwtClaims{Room: "r1", Role: "admin", RegisteredClaims: jwt.RegisteredClaims{
		Subject: "42", IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(time.Minute))}}).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(key, forged, "r1", now); !errors.Is(err, ErrInvalid) {
		t.Fatalf("role admin verified: %v", err)
	}
}

// Keys shorter than 32 bytes neither mint nor verify tokens.
func TestShortKeysRefused(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	for _, key := range [][]byte{[]byte("k"), []byte(strings.Repeat("k", MinKeySize-1))} {
		if _, err := Mint(key, Claims{Room: "r", User: "u", IssuedAt: now}, time.Minute); !errors.Is(err, ErrShortKey) {
			t.Errorf("Mint with a %d-byte key: %v, want ErrShortKey", len(key), err)
		}
		// A token signed with the short key by hand is refused too.
		tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwtClaims{Room: "r", RegisteredClaims: jwt.RegisteredClaims{
			Subject: "u", IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(time.Minute))}}).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Verify(key, tok, "r", now); !errors.Is(err, ErrShortKey) {
			t.Errorf("Verify with a %d-byte key: %v, want ErrShortKey", len(key), err)
		}
		if _, err := VerifyWith(func(string) ([]byte, error) { return key, nil }, tok, "", now); !errors.Is(err, ErrShortKey) {
			t.Errorf("VerifyWith a %d-byte key: %v, want ErrShortKey", len(key), err)
		}
	}
	if _, err := Mint([]byte(strings.Repeat("k", MinKeySize)), Claims{Room: "r", User: "u"}, time.Minute); err != nil {
		t.Errorf("Mint with a %d-byte key: %v", MinKeySize, err)
	}
}

func TestVerifyWithLooksUpTheTokensRoom(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	keys := map[string][]byte{
		"r1": []byte("key of room one, 32 bytes long.."),
		"r2": []byte("key of room two, 32 bytes long.."),
	}
	lookup := func(room string) ([]byte, error) {
		if k, ok := keys[room]; ok {
			return k, nil
		}
		return nil, errors.New("no such room")
	}
	mintAt := func(key []byte, room string, iat time.Time, ttl time.Duration) string {
		t.Helper()
		tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwtClaims{Room: room, RegisteredClaims: jwt.RegisteredClaims{
			Subject: "u", IssuedAt: jwt.NewNumericDate(iat), ExpiresAt: jwt.NewNumericDate(iat.Add(ttl))}}).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	noIat, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwtClaims{Room: "r1", RegisteredClaims: jwt.RegisteredClaims{
		Subject: "u", ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour))}}).SignedString(keys["r1"])
	notYet, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwtClaims{Room: "r1", RegisteredClaims: jwt.RegisteredClaims{
		Subject: "u", IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now.Add(time.Minute)),
		ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour))}}).SignedString(keys["r1"])
	noRoom, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwtClaims{RegisteredClaims: jwt.RegisteredClaims{
		Subject: "u", IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour))}}).SignedString(keys["r1"])

	for _, tc := range []struct {
		name string
		tok  string
		room string
		want error // nil: accepted
	}{
		{"room one", mintAt(keys["r1"], "r1", now, time.Hour), "", nil},
		{"room two", mintAt(keys["r2"], "r2", now, time.Hour), "", nil},
		{"room two only", mintAt(keys["r2"], "r2", now, time.Hour), "r2", nil},
		{"another room's key", mintAt(keys["r1"], "r2", now, time.Hour), "", ErrInvalid},
		{"room not open", mintAt(keys["r1"], "r3", now, time.Hour), "", ErrNoRoom},
		{"wrong room", mintAt(keys["r1"], "r1", now, time.Hour), "r2", ErrWrongRoom},
		{"no room claim", noRoom, "", ErrInvalid},
		{"24h lifetime", mintAt(keys["r1"], "r1", now, MaxLifetime), "", nil},
		{"lifetime over 24h", mintAt(keys["r1"], "r1", now, MaxLifetime+time.Second), "", ErrInvalid},
		{"iat within skew", mintAt(keys["r1"], "r1", now.Add(ClockSkew), time.Hour), "", nil},
		{"iat in the future", mintAt(keys["r1"], "r1", now.Add(ClockSkew+time.Second), time.Hour), "", ErrInvalid},
		{"no iat", noIat, "", ErrInvalid},
		{"nbf ahead", notYet, "", ErrInvalid},
		{"expired", mintAt(keys["r1"], "r1", now.Add(-2*time.Hour), time.Hour), "", ErrExpired},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := VerifyWith(lookup, tc.tok, tc.room, now)
			if tc.want == nil {
				if err != nil || c.User != "u" {
					t.Fatalf("VerifyWith = %+v, %v", c, err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("VerifyWith = %v, want %v", err, tc.want)
			}
		})
	}
	_, err := VerifyWith(lookup, mintAt(keys["r1"], "r3", now, time.Hour), "", now)
	if err == nil || !strings.Contains(err.Error(), "no such room") || !strings.Contains(err.Error(), `"r3"`) {
		t.Fatalf("unknown room error %v does not say why", err)
	}
	if _, err := Mint(keys["r1"], Claims{Room: "r1", User: "u"}, MaxLifetime+time.Second); err == nil {
		t.Fatal("minted a token living over 24h")
	}
}
