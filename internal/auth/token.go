package auth

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// ErrBadToken means a token is missing, malformed, forged or expired.
var ErrBadToken = errors.New("invalid or expired token")

// MinSecretBytes is the shortest signing secret accepted.
const MinSecretBytes = 32

// Identity is who a valid token speaks for.
type Identity struct {
	UserID   uint64
	Username string
}

// Tokens signs and checks the API's session tokens (HS256 JWTs).
type Tokens struct {
	secret []byte
	ttl    time.Duration
	now    func() time.Time
}

const issuer = "meeting"

// NewTokens returns a token issuer. The secret must hold at least
// MinSecretBytes bytes and ttl must be positive.
func NewTokens(secret []byte, ttl time.Duration, now func() time.Time) (*Tokens, error) {
	if len(secret) < MinSecretBytes {
		return nil, fmt.Errorf("token secret has %d bytes, need at least %d", len(secret), MinSecretBytes)
	}
	if ttl <= 0 {
		return nil, fmt.Errorf("token lifetime %s must be positive", ttl)
	}
	if now == nil {
		now = time.Now
	}
	return &Tokens{secret: secret, ttl: ttl, now: now}, nil
}

type claims struct {
	Name string `json:"name"`
	jwt.RegisteredClaims
}

// Issue returns a token for id and when it expires.
func (t *Tokens) Issue(id Identity) (string, time.Time, error) {
	now := t.now()
	// JWT times are whole seconds; the expiry reported is the one in the token.
	exp := now.Add(t.ttl).Truncate(time.Second)
	c := claims{
		Name: id.Username,
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    issuer,
			Subject:   strconv.FormatUint(id.UserID, 10),
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(exp),
		},
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(t.secret)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("sign token: %w", err)
	}
	return s, exp, nil
}

// Parse checks a token and returns whom it speaks for.
func (t *Tokens) Parse(token string) (Identity, error) {
	var c claims
	_, err := jwt.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return t.secret, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithIssuer(issuer),
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(t.now),
	)
	if err != nil {
		return Identity{}, fmt.Errorf("%w: %w", ErrBadToken, err)
	}
	id, err := strconv.ParseUint(c.Subject, 10, 64)
	if err != nil || id == 0 {
		return Identity{}, fmt.Errorf("%w: bad subject", ErrBadToken)
	}
	return Identity{UserID: id, Username: c.Name}, nil
}
