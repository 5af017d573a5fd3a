// Package auth hashes passwords, issues and checks API tokens, and limits
// login attempts.
package auth

import (
	"crypto/md5"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// MaxPasswordBytes is bcrypt's input limit. Longer passwords are refused by
// Hash and Verify rather than silently truncated to their first 72 bytes.
// Pre-hashing would lift the limit but tie every stored hash to a scheme of
// our own; refusing keeps plain bcrypt, and 72 bytes is ample.
const MaxPasswordBytes = 72

var (
	// ErrBadPassword means a password does not match its hash.
	ErrBadPassword = errors.New("password does not match")

	// ErrPasswordTooLong means a password has more than MaxPasswordBytes
	// bytes. Hash returns it; Verify returns it joined with ErrBadPassword
	// (both match errors.Is), so a caller that knows only ErrBadPassword
	// answers "wrong password".
	ErrPasswordTooLong = fmt.Errorf("password is longer than %d bytes", MaxPasswordBytes)
)

// Hasher hashes passwords with bcrypt.
type Hasher struct {
	// Cost is the bcrypt cost; zero means bcrypt.DefaultCost.
	Cost int
}

// Hash returns the bcrypt hash of password, or ErrPasswordTooLong.
func (h Hasher) Hash(password string) (string, error) {
	if len(password) > MaxPasswordBytes {
		return "", ErrPasswordTooLong
	}
	cost := h.Cost
	if cost == 0 {
		cost = bcrypt.DefaultCost
	}
	b, err := bcrypt.GenerateFromPassword([]byte(password), cost)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return string(b), nil
}

// Verify checks password against hash. rehash is true when the hash is in
// an old scheme (the seed's unsalted md5 hex) or at another cost, and should
// be replaced by Hash(password) now that the password is known. A password
// over MaxPasswordBytes never matches, in either scheme.
func (h Hasher) Verify(hash, password string) (rehash bool, err error) {
	if len(password) > MaxPasswordBytes {
		return false, fmt.Errorf("%w: %w", ErrBadPassword, ErrPasswordTooLong)
	}
	if isLegacyMD5(hash) {
		sum := md5.Sum([]byte(password))
		if subtle.ConstantTimeCompare([]byte(hex.EncodeToString(sum[:])), []byte(strings.ToLower(hash))) != 1 {
			return false, ErrBadPassword
		}
		return true, nil
	}
	if err := bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)); err != nil {
		if errors.Is(err, bcrypt.ErrMismatchedHashAndPassword) {
			return false, ErrBadPassword
		}
		return false, fmt.Errorf("check password: %w", err)
	}
	cost, err := bcrypt.Cost([]byte(hash))
	want := h.Cost
	if want == 0 {
		want = bcrypt.DefaultCost
	}
	return err == nil && cost < want, nil
}

func isLegacyMD5(hash string) bool {
	if len(hash) != 32 {
		return false
	}
	_, err := hex.DecodeString(hash)
	return err == nil
}
