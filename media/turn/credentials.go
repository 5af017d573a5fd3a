package turn

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	pionturn "github.com/pion/turn/v2"

	"meeting.dev/meeting/media/token"
)

// parseUsername splits a TURN REST API username into its expiry and user.
// A username of only the expiry (as some clients send) has an empty user.
func parseUsername(username string) (expiry time.Time, user string, err error) {
	ts, user, _ := strings.Cut(username, ":")
	secs, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || secs <= 0 {
		return time.Time{}, "", fmt.Errorf("%w: %q", ErrMalformedUsername, username)
	}
	return time.Unix(secs, 0), user, nil
}

// authenticator checks TURN REST API usernames and derives the long-term
// credential key pion needs to check a request's MESSAGE-INTEGRITY.
type authenticator struct {
	secret  []byte
	realm   string
	now     func() time.Time
	metrics *metrics
}

// key returns the long-term key, MD5(username:realm:password), for a username
// that is well formed, unexpired and of this realm. The caller compares
// MESSAGE-INTEGRITY with it (pion/stun compares in constant time).
func (a *authenticator) key(username, realm string) ([]byte, error) {
	if realm != a.realm {
		return nil, fmt.Errorf("%w: %q", ErrWrongRealm, realm)
	}
	expiry, _, err := parseUsername(username)
	if err != nil {
		return nil, err
	}
	if !a.now().Before(expiry) {
		return nil, fmt.Errorf("%w at %s", ErrExpired, expiry.UTC().Format(time.RFC3339))
	}
	return pionturn.GenerateAuthKey(username, realm, token.TURNPassword(a.secret, username)), nil
}

// handle is the pion AuthHandler.
func (a *authenticator) handle(username, realm string, _ net.Addr) ([]byte, bool) {
	k, err := a.key(username, realm)
	if err != nil {
		a.metrics.authFailure(err)
		return nil, false
	}
	return k, true
}
