package turn

import (
	"crypto/hmac"
	"crypto/sha1" //nolint:gosec // HMAC-SHA1 is what the TURN REST API scheme prescribes.
	"encoding/base64"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	pionturn "github.com/pion/turn/v2"
)

// Credentials returns ephemeral TURN credentials for user, valid for ttl from
// now, in the TURN REST API scheme that coturn calls use-auth-secret: the
// username is "<unix expiry>:<user>" and the password is
// base64(HMAC-SHA1(secret, username)).
func Credentials(secret []byte, user string, ttl time.Duration, now time.Time) (username, password string) {
	username = strconv.FormatInt(now.Add(ttl).Unix(), 10) + ":" + user
	return username, restPassword(secret, username)
}

// restPassword is the password the TURN REST API scheme gives username.
func restPassword(secret []byte, username string) string {
	mac := hmac.New(sha1.New, secret)
	mac.Write([]byte(username)) // a hash never fails to write
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

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
	return pionturn.GenerateAuthKey(username, realm, restPassword(a.secret, username)), nil
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
