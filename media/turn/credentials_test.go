package turn

import (
	"meeting.dev/meeting/media/token"

	"crypto/md5"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestParseUsername(t *testing.T) {
	for _, tc := range []struct {
		in      string
		expiry  int64
		user    string
		wantErr bool
	}{
		{"1700000000:alice", 1700000000, "alice", false},
		{"1700000000:a:b", 1700000000, "a:b", false},
		{"1700000000", 1700000000, "", false},
		{"alice:1700000000", 0, "", true},
		{"", 0, "", true},
		{"-5:alice", 0, "", true},
		{"0:alice", 0, "", true},
		{"99999999999999999999:x", 0, "", true},
	} {
		exp, user, err := parseUsername(tc.in)
		if tc.wantErr {
			if !errors.Is(err, ErrMalformedUsername) {
				t.Errorf("parseUsername(%q) err = %v, want ErrMalformedUsername", tc.in, err)
			}
			continue
		}
		if err != nil || exp.Unix() != tc.expiry || user != tc.user {
			t.Errorf("parseUsername(%q) = %v, %q, %v", tc.in, exp.Unix(), user, err)
		}
	}
}

func TestAuthenticatorKey(t *testing.T) {
	m, err := newMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	a := &authenticator{secret: []byte("k"), realm: "meeting", now: func() time.Time { return now }, metrics: m}
	valid, _ := token.TURNCredentials([]byte("k"), "bob", time.Minute, now)
	expired, _ := token.TURNCredentials([]byte("k"), "bob", -time.Second, now)
	atExpiry, _ := token.TURNCredentials([]byte("k"), "bob", 0, now)
	for _, tc := range []struct {
		name, user, realm string
		want              error
	}{
		{"valid", valid, "meeting", nil},
		{"expired", expired, "meeting", ErrExpired},
		{"expiring now", atExpiry, "meeting", ErrExpired},
		{"other realm", valid, "other", ErrWrongRealm},
		{"malformed", "bob", "meeting", ErrMalformedUsername},
	} {
		k, err := a.key(tc.user, tc.realm)
		if !errors.Is(err, tc.want) || (tc.want == nil && len(k) != 16) {
			t.Errorf("%s: key = %x, %v; want %v", tc.name, k, err, tc.want)
		}
	}
	// The key is the long-term credential key of the REST password, so a
	// client holding the password from Credentials computes the same.
	_, pass := token.TURNCredentials([]byte("k"), "bob", time.Minute, now)
	k, _ := a.key(valid, "meeting")
	if want := longTermKey(valid, "meeting", pass); string(k) != string(want) {
		t.Errorf("key %x, want %x", k, want)
	}
}

// longTermKey is RFC 5389's long-term credential key, computed here without pion.
func longTermKey(user, realm, pass string) []byte {
	sum := md5.Sum([]byte(user + ":" + realm + ":" + pass))
	return sum[:]
}
