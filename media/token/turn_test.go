package token

import (
	"testing"
	"time"
)

func TestTURNCredentialsMatchCoturnScheme(t *testing.T) {
	// Computed independently: printf 1700000000:alice | openssl dgst -sha1 -hmac s3cret -binary | base64
	now := time.Unix(1700000000-3600, 0)
	user, pass := TURNCredentials([]byte("s3cret"), "alice", time.Hour, now)
	if user != "1700000000:alice" || pass != "TtElzSjT0GdnTQ9xdcRNxx96yQs=" {
		t.Fatalf("TURNCredentials = %q, %q", user, pass)
	}
	if other := TURNPassword([]byte("other"), user); other == pass {
		t.Fatal("a different secret gave the same password")
	}
}
