package token

import (
	"crypto/hmac"
	"crypto/sha1" //nolint:gosec // HMAC-SHA1 is what the TURN REST API scheme prescribes.
	"encoding/base64"
	"strconv"
	"time"
)

// TURNCredentials returns ephemeral TURN credentials for user, valid for ttl
// from now, in the TURN REST API scheme that coturn calls use-auth-secret:
// the username is "<unix expiry>:<user>" and the password is
// base64(HMAC-SHA1(secret, username)).
func TURNCredentials(secret []byte, user string, ttl time.Duration, now time.Time) (username, password string) {
	username = strconv.FormatInt(now.Add(ttl).Unix(), 10) + ":" + user
	return username, TURNPassword(secret, username)
}

// TURNPassword is the password the TURN REST API scheme gives username.
func TURNPassword(secret []byte, username string) string {
	mac := hmac.New(sha1.New, secret)
	mac.Write([]byte(username)) // a hash never fails to write
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}
