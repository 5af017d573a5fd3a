package auth

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

var (
	// ErrBadToken means a token is missing, malformed, forged, expired,
	// issued in the future, too long-lived, or revoked. Every token error
	// matches it; the server answers 401 to all of them.
	ErrBadToken = errors.New("invalid or expired token")

	// ErrRevoked means a token was issued before its user's last password
	// change (its generation is older than the user's). It matches ErrBadToken.
	ErrRevoked = fmt.Errorf("%w: revoked by a password change", ErrBadToken)
)

const (
	// MinSecretBytes is the shortest signing secret accepted.
	MinSecretBytes = 32

	// MaxTokenLifetime is the longest token lifetime NewTokens accepts, and
	// the most exp - iat may be in a token Parse accepts (with the configured
	// lifetime, whichever is smaller).
	MaxTokenLifetime = 30 * 24 * time.Hour

	// MaxClockSkew is how far in the future a token's iat may be: the
	// issuer's clock may run a little ahead of the checker's.
	MaxClockSkew = time.Minute
)

// Identity is who a valid token speaks for.
type Identity struct {
	UserID   uint64
	Username string
	// Generation is the user's token generation when the token was issued
	// (the "gen" claim; absent, and zero, in tokens of generation 0). A
	// password change increments the user's generation, which revokes every
	// older token: see CheckGeneration.
	Generation uint64
	// IssuedAt is the token's iat (whole seconds); zero when issuing.
	IssuedAt time.Time
}

// CheckGeneration returns ErrRevoked unless the token behind id was issued
// at the user's current token generation, as stored with the user. The
// server calls it on every authenticated request, after Parse, with the
// generation read from the user's row; a missing user is refused as well.
func CheckGeneration(id Identity, current uint64) error {
	if id.Generation != current {
		return ErrRevoked
	}
	return nil
}

// Tokens signs and checks the API's session tokens (HS256 JWTs).
type Tokens struct {
	secret []byte
	ttl    time.Duration
	now    func() time.Time
}

const issuer = "meeting"

// NewTokens returns a token issuer. The secret must hold at least
// MinSecretBytes bytes and ttl must be positive and at most MaxTokenLifetime.
func NewTokens(secret []byte, ttl time.Duration, now func() time.Time) (*Tokens, error) {
	if len(secret) < MinSecretBytes {
		return nil, fmt.Errorf("token secret has %d bytes, need at least %d", len(secret), MinSecretBytes)
	}
	if ttl <= 0 || ttl > MaxTokenLifetime {
		return nil, fmt.Errorf("token lifetime %s must be positive and at most %s", ttl, MaxTokenLifetime)
	}
	if now == nil {
		now = time.Now
	}
	return &Tokens{secret: secret, ttl: ttl, now: now}, nil
}

type claims struct {
	Name       string `json:"name"`
	Generation uint64 `json:"gen,omitempty"`
	jwt.RegisteredClaims
}

// Issue returns a token for id (UserID, Username and Generation; IssuedAt is
// ignored) and when it expires.
func (t *Tokens) Issue(id Identity) (string, time.Time, error) {
	if id.UserID == 0 || id.UserID > math.MaxInt64 {
		return "", time.Time{}, fmt.Errorf("issue token: user id %d out of range", id.UserID)
	}
	// JWT times are whole seconds; the times in the token are the ones reported.
	now := t.now().Truncate(time.Second)
	exp := now.Add(t.ttl)
	c := claims{
		Name:       id.Username,
		Generation: id.Generation,
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

// Parse checks a token and returns whom it speaks for. Every error matches
// ErrBadToken. Beyond the signature, issuer and expiry, a token must carry
// iat, no later than MaxClockSkew from now, and exp - iat must be at most the
// configured lifetime; its subject must be a user id in 1..MaxInt64 written
// canonically (ids are signed 64-bit in the databases). Parse does not know
// about revocation: the caller checks Identity.Generation with
// CheckGeneration.
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
	if c.IssuedAt == nil {
		return Identity{}, fmt.Errorf("%w: no iat", ErrBadToken)
	}
	iat, exp := c.IssuedAt.Time, c.ExpiresAt.Time
	if iat.After(t.now().Add(MaxClockSkew)) {
		return Identity{}, fmt.Errorf("%w: issued in the future", ErrBadToken)
	}
	if exp.Sub(iat) > t.ttl {
		return Identity{}, fmt.Errorf("%w: lifetime %s over %s", ErrBadToken, exp.Sub(iat), t.ttl)
	}
	id, err := strconv.ParseUint(c.Subject, 10, 64)
	if err != nil || id == 0 || id > math.MaxInt64 || strconv.FormatUint(id, 10) != c.Subject {
		return Identity{}, fmt.Errorf("%w: bad subject", ErrBadToken)
	}
	return Identity{UserID: id, Username: c.Name, Generation: c.Generation, IssuedAt: iat.UTC()}, nil
}
