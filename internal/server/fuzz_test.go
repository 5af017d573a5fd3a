package server

import (
	"bytes"
	"errors"
	"net/http"
	"testing"
	"time"
)

// Whatever the bytes, decoding a create or edit request either fails with a
// client error or yields a request that obeys every rule; it never panics.
func FuzzMeetingRequests(f *testing.F) {
	for _, s := range []string{
		`{"name":"x","begin_at":1893574800000,"end_at":1893578400000}`,
		`{"identity":"5f0c3c5e-6f55-4a39-9b34-0d6f0a1d2b11","name":"y"}`,
		`{"identity":"5f0c3c5e-6f55-4a39-9b34-0d6f0a1d2b11","begin_at":1,"end_at":-1}`,
		`{"name":"x","begin_at":1e300,"end_at":null,"participants":["a","b",null]}`,
		`{"name":"\u0000","begin_at":"1","end_at":[]}`,
		`[]`, `null`, `{`, `{}{}`, "\xff\xfe", `{"name":"x"}` + string(make([]byte, 10)),
	} {
		f.Add([]byte(s))
	}
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, body []byte) {
		c, err := parseCreate(bytes.NewReader(body), now)
		if err != nil {
			mustBeClientError(t, err)
		} else {
			if c.Name == "" || !c.EndAt.After(c.BeginAt) || c.EndAt.Sub(c.BeginAt) > maxMeetingDuration || !c.EndAt.After(now) {
				t.Fatalf("accepted an invalid create: %+v", c)
			}
		}
		e, err := parseEdit(bytes.NewReader(body))
		if err != nil {
			mustBeClientError(t, err)
		} else if checkIdentity(e.Identity) != nil || (e.Name == nil && e.BeginAt == nil && e.EndAt == nil) || (e.Name != nil && *e.Name == "") {
			t.Fatalf("accepted an invalid edit: %+v", e)
		}
		if _, err := parseCredentials(bytes.NewReader(body), true); err != nil {
			mustBeClientError(t, err)
		}
	})
}

func mustBeClientError(t *testing.T, err error) {
	t.Helper()
	var in *inputError
	if !errors.As(err, &in) || in.msg == "" || (in.status != http.StatusBadRequest && in.status != http.StatusRequestEntityTooLarge) {
		t.Fatalf("not a client error with a message: %#v", err)
	}
}
