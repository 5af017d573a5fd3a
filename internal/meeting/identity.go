package meeting

import (
	"crypto/rand"
	"fmt"
	"regexp"
)

// MaxIdentityLen is the longest a meeting identity may be (the Meeting
// resource's spec.identity and the room_basic.identity column).
const MaxIdentityLen = 64

// IdentityPattern is what a meeting identity matches: the Meeting resource's
// spec.identity pattern. Identities are lower case; callers lower-case what
// a client sends before checking it.
const IdentityPattern = `^[a-z0-9][a-z0-9_.-]*$`

var identityRegexp = regexp.MustCompile(IdentityPattern)

// CheckIdentity reports why identity is not a meeting identity: 1 to
// MaxIdentityLen characters matching IdentityPattern.
func CheckIdentity(identity string) error {
	switch {
	case identity == "":
		return refuse(ErrInvalid, "identity must not be empty")
	case len(identity) > MaxIdentityLen || !identityRegexp.MatchString(identity):
		return refuse(ErrInvalid, "identity must be 1 to %d characters: lowercase letters, digits, '_', '.' or '-', starting with a letter or digit",
			MaxIdentityLen)
	}
	return nil
}

// newIdentity returns a random (version 4) UUID, a new meeting's identity.
func newIdentity() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("meeting identity: %w", err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16]), nil
}
