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

// ErrBadPassword means a password does not match its hash.
var ErrBadPassword = errors.New("password does not match")

// Hasher hashes passwords with bcrypt.
type Hasher struct {
	// Cost is the bcrypt cost; zero means bcrypt.DefaultCost.
	Cost int
}

// MaxPasswordBytes is bcrypt's input limit; longer passwords are refused
// rather than silently truncated.
const MaxPasswordBytes = 72

// Hash returns the bcrypt hash of password.
func (h Hasher) Hash(password string) (string, error) {
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
// be replaced by Hash(password) now that the password is known.
func (h Hasher) Verify(hash, password string) (rehash bool, err error) {
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
