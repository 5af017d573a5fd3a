package auth

import (
	"crypto/md5"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// A password is at most 72 bytes: bcrypt would compare only the first 72,
// so the 72 bytes plus anything would log in.
func TestVerifyRefusesPasswordsOver72Bytes(t *testing.T) {
	h := Hasher{Cost: bcrypt.MinCost}
	pw := strings.Repeat("p", MaxPasswordBytes)
	hash := mustHash(t, h, pw)
	if _, err := h.Verify(hash, pw); err != nil {
		t.Fatalf("the 72-byte password itself: %v", err)
	}
	for _, long := range []string{pw + "x", pw + strings.Repeat("anything", 10)} {
		_, err := h.Verify(hash, long)
		if !errors.Is(err, ErrBadPassword) || !errors.Is(err, ErrPasswordTooLong) {
			t.Errorf("Verify(72 bytes + %d) = %v; want ErrBadPassword and ErrPasswordTooLong", len(long)-MaxPasswordBytes, err)
		}
	}
	long := strings.Repeat("m", MaxPasswordBytes+1)
	sum := md5.Sum([]byte(long))
	if _, err := h.Verify(hex.EncodeToString(sum[:]), long); !errors.Is(err, ErrPasswordTooLong) {
		t.Errorf("a legacy md5 hash must refuse an over-long password too: %v", err)
	}
	if _, err := h.Hash(long); !errors.Is(err, ErrPasswordTooLong) {
		t.Errorf("Hash(73 bytes) = %v; want ErrPasswordTooLong", err)
	}
}
