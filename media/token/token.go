// Package token holds the pure credential code of a room, which the API
// imports without linking pion: join tokens (JWTs signed with HS256 under the
// room's key, carrying the room identity, the user id (sub), the display
// name, the optional role, and issue and expiry times) and TURN REST API
// credentials.
package token

import (
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Errors returned by Verify and VerifyWith; test with errors.Is.
var (
	// ErrNoKey means the key was empty: no token is ever valid without one.
	ErrNoKey = errors.New("token: empty key")
	// ErrShortKey means the key has fewer than MinKeySize bytes.
	ErrShortKey = fmt.Errorf("token: key shorter than %d bytes", MinKeySize)
	// ErrInvalid means the token is malformed, not HS256 or not signed with the key.
	ErrInvalid = errors.New("token: invalid")
	// ErrExpired means the token's exp is not after the verification time.
	ErrExpired = errors.New("token: expired")
	// ErrWrongRoom means the token was issued for another room.
	ErrWrongRoom = errors.New("token: wrong room")
	// ErrNoRoom means the key lookup knows no key for the token's room: the
	// room is not open (or never was).
	ErrNoRoom = errors.New("token: room not open")
)

// Claims is what a join token says.
type Claims struct {
	// Room is the meeting identity the token admits to.
	Room string
	// User is the user id (the JWT sub claim).
	User string
	// Name is the display name shown to the other participants.
	Name string
	// Role is the participant's role in the room: "" or RoleHost.
	Role string
	// IssuedAt is iat; Mint uses the current time when it is zero.
	IssuedAt time.Time
	// ExpiresAt is exp; Mint sets it to IssuedAt + ttl.
	ExpiresAt time.Time
}

// RoleHost is the role of a meeting's host (its creator): the host may
// mute and remove the other participants.
const RoleHost = "host"

// validRole reports whether r is a role a token may carry.
func validRole(r string) bool { return r == "" || r == RoleHost }

type jwtClaims struct {
	Room string `json:"room"`
	Name string `json:"name,omitempty"`
	Role string `json:"role,omitempty"`
	jwt.RegisteredClaims
}

// MinKeySize is the fewest bytes a room's key may have: HS256 keys shorter
// than the hash (32 bytes) weaken it (RFC 7518, section 3.2).
const MinKeySize = 32

// checkKey refuses an empty key (ErrNoKey) and a short one (ErrShortKey).
func checkKey(key []byte) error {
	switch {
	case len(key) == 0:
		return ErrNoKey
	case len(key) < MinKeySize:
		return fmt.Errorf("%w: it has %d", ErrShortKey, len(key))
	}
	return nil
}

// Mint returns a token for c valid for ttl from c.IssuedAt (or from now).
// The key must have at least MinKeySize bytes.
func Mint(key []byte, c Claims, ttl time.Duration) (string, error) {
	if err := checkKey(key); err != nil {
		return "", err
	}
	if c.Room == "" || c.User == "" {
		return "", errors.New("token: room and user are required")
	}
	if !validRole(c.Role) {
		return "", fmt.Errorf("token: role %q is not %q or empty", c.Role, RoleHost)
	}
	if ttl <= 0 || ttl > MaxLifetime {
		return "", fmt.Errorf("token: ttl %s is not in (0, %s]", ttl, MaxLifetime)
	}
	iat := c.IssuedAt
	if iat.IsZero() {
		iat = time.Now()
	}
	jc := jwtClaims{
		Room: c.Room,
		Name: c.Name,
		Role: c.Role,
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   c.User,
			IssuedAt:  jwt.NewNumericDate(iat),
			ExpiresAt: jwt.NewNumericDate(iat.Add(ttl)),
		},
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jc).SignedString(key)
	if err != nil {
		return "", fmt.Errorf("token: sign: %w", err)
	}
	return s, nil
}

// Limits on a token's times.
const (
	// MaxLifetime is the longest a token may be valid: exp - iat.
	MaxLifetime = 24 * time.Hour
	// ClockSkew is how far in the future iat may be, for issuers whose
	// clock runs ahead of the verifier's.
	ClockSkew = time.Minute
)

// Verify checks tok's signature under key and its times at now and, when
// room is not empty, that it admits to room. It returns the token's claims.
func Verify(key []byte, tok, room string, now time.Time) (Claims, error) {
	if len(key) == 0 {
		return Claims{}, ErrNoKey
	}
	return VerifyWith(func(string) ([]byte, error) { return key, nil }, tok, room, now)
}

// VerifyWith checks tok like Verify, with the key keys returns for the room
// the token names: a token of a room keys knows nothing of (an error) is
// refused with ErrNoRoom wrapping that error. When room is not empty, a
// token of another room is refused with ErrWrongRoom before keys is asked.
//
// The checks: HS256 under the room's key, which must have at least
// MinKeySize bytes (else ErrNoKey or ErrShortKey); room and sub present; exp
// present and after now; iat present, at most ClockSkew after now, and at
// most MaxLifetime before exp; nbf, when present, not after now; role, when
// present, RoleHost.
func VerifyWith(keys func(room string) ([]byte, error), tok, room string, now time.Time) (Claims, error) {
	var (
		jc     jwtClaims
		keyErr error // what keyfunc refused, without jwt's wrapping
	)
	p := jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithTimeFunc(func() time.Time { return now }),
		jwt.WithExpirationRequired(),
	)
	_, err := p.ParseWithClaims(tok, &jc, func(t *jwt.Token) (any, error) {
		c, ok := t.Claims.(*jwtClaims)
		switch {
		case !ok || c.Room == "":
			return nil, errors.New("room missing")
		case room != "" && c.Room != room:
			keyErr = ErrWrongRoom
			return nil, keyErr
		}
		key, err := keys(c.Room)
		if err != nil {
			keyErr = fmt.Errorf("%w: room %q: %w", ErrNoRoom, c.Room, err)
			return nil, keyErr
		}
		if keyErr = checkKey(key); keyErr != nil {
			return nil, keyErr
		}
		return key, nil
	})
	switch {
	case keyErr != nil:
		return Claims{}, keyErr
	case errors.Is(err, jwt.ErrTokenExpired):
		return Claims{}, ErrExpired
	case err != nil:
		return Claims{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if jc.Room == "" || jc.Subject == "" {
		return Claims{}, fmt.Errorf("%w: room or sub missing", ErrInvalid)
	}
	if jc.IssuedAt == nil {
		return Claims{}, fmt.Errorf("%w: iat missing", ErrInvalid)
	}
	if !validRole(jc.Role) {
		return Claims{}, fmt.Errorf("%w: role %.20q is not %q", ErrInvalid, jc.Role, RoleHost)
	}
	iat, exp := jc.IssuedAt.Time, jc.ExpiresAt.Time
	if iat.After(now.Add(ClockSkew)) {
		return Claims{}, fmt.Errorf("%w: issued in the future (iat %s)", ErrInvalid, iat.UTC().Format(time.RFC3339))
	}
	if exp.Sub(iat) > MaxLifetime {
		return Claims{}, fmt.Errorf("%w: lifetime %s exceeds %s", ErrInvalid, exp.Sub(iat), MaxLifetime)
	}
	return Claims{Room: jc.Room, User: jc.Subject, Name: jc.Name, Role: jc.Role, IssuedAt: iat, ExpiresAt: exp}, nil
}
