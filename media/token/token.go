// Package token holds the pure credential code of a room, which the API
// imports without linking pion: join tokens (JWTs signed with HS256 under the
// room's key, carrying the room identity, the user id (sub), the display
// name, and issue and expiry times) and TURN REST API credentials.
package token

import (
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Errors returned by Verify; test with errors.Is.
var (
	// ErrNoKey means the key was empty: no token is ever valid without one.
	ErrNoKey = errors.New("token: empty key")
	// ErrInvalid means the token is malformed, not HS256 or not signed with the key.
	ErrInvalid = errors.New("token: invalid")
	// ErrExpired means the token's exp is not after the verification time.
	ErrExpired = errors.New("token: expired")
	// ErrWrongRoom means the token was issued for another room.
	ErrWrongRoom = errors.New("token: wrong room")
)

// Claims is what a join token says.
type Claims struct {
	// Room is the meeting identity the token admits to.
	Room string
	// User is the user id (the JWT sub claim).
	User string
	// Name is the display name shown to the other participants.
	Name string
	// IssuedAt is iat; Mint uses the current time when it is zero.
	IssuedAt time.Time
	// ExpiresAt is exp; Mint sets it to IssuedAt + ttl.
	ExpiresAt time.Time
}

type jwtClaims struct {
	Room string `json:"room"`
	Name string `json:"name,omitempty"`
	jwt.RegisteredClaims
}

// Mint returns a token for c valid for ttl from c.IssuedAt (or from now).
func Mint(key []byte, c Claims, ttl time.Duration) (string, error) {
	if len(key) == 0 {
		return "", ErrNoKey
	}
	if c.Room == "" || c.User == "" {
		return "", errors.New("token: room and user are required")
	}
	if ttl <= 0 {
		return "", fmt.Errorf("token: ttl %s is not positive", ttl)
	}
	iat := c.IssuedAt
	if iat.IsZero() {
		iat = time.Now()
	}
	jc := jwtClaims{
		Room: c.Room,
		Name: c.Name,
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

// Verify checks tok's signature under key and its expiry at now and, when
// room is not empty, that it admits to room. It returns the token's claims.
func Verify(key []byte, tok, room string, now time.Time) (Claims, error) {
	if len(key) == 0 {
		return Claims{}, ErrNoKey
	}
	var jc jwtClaims
	p := jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithTimeFunc(func() time.Time { return now }),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
	)
	_, err := p.ParseWithClaims(tok, &jc, func(*jwt.Token) (any, error) { return key, nil })
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return Claims{}, ErrExpired
	case err != nil:
		return Claims{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if jc.Room == "" || jc.Subject == "" {
		return Claims{}, fmt.Errorf("%w: room or sub missing", ErrInvalid)
	}
	if room != "" && jc.Room != room {
		return Claims{}, ErrWrongRoom
	}
	c := Claims{Room: jc.Room, User: jc.Subject, Name: jc.Name}
	if jc.IssuedAt != nil {
		c.IssuedAt = jc.IssuedAt.Time
	}
	if jc.ExpiresAt != nil {
		c.ExpiresAt = jc.ExpiresAt.Time
	}
	return c, nil
}
