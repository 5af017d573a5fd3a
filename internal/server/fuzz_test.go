package server

import (
	"bytes"
	"errors"
	"net/http"
	"testing"
	"time"

	"meeting.dev/meeting/internal/meeting"
)

// Whatever the bytes, decoding a create or edit request and checking it by
// the service's rules either fails with a client error or yields a request
// that obeys every rule; it never panics.
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
		c, err := parseCreate(bytes.NewReader(body))
		if err == nil {
			c.Name, err = meeting.CheckName(c.Name)
		}
		if err == nil {
			err = meeting.CheckWindow(c.BeginAt, c.EndAt, now)
		}
		if err != nil {
			mustBeClientError(t, err)
		} else if c.Name == "" || !c.EndAt.After(c.BeginAt) || c.EndAt.Sub(c.BeginAt) > meeting.MaxDuration || !c.EndAt.After(now) {
			t.Fatalf("accepted an invalid create: %+v", c)
		}
		id, e, err := parseEdit(bytes.NewReader(body))
		if err == nil && e.Name != nil {
			var name string
			name, err = meeting.CheckName(*e.Name)
			e.Name = &name
		}
		if err != nil {
			mustBeClientError(t, err)
		} else if checkIdentity(id) != nil || (e.Name != nil && *e.Name == "") {
			t.Fatalf("accepted an invalid edit: %q %+v", id, e)
		}
		if id, err := parseJoin(bytes.NewReader(body)); err != nil {
			mustBeClientError(t, err)
		} else if checkIdentity(id) != nil {
			t.Fatalf("accepted an invalid join: %q", id)
		}
		if _, err := parseCredentials(bytes.NewReader(body), true); err != nil {
			mustBeClientError(t, err)
		}
	})
}

func mustBeClientError(t *testing.T, err error) {
	t.Helper()
	if errors.Is(err, meeting.ErrInvalid) && err.Error() != "" {
		return
	}
	var in *inputError
	if !errors.As(err, &in) || in.msg == "" || (in.status != http.StatusBadRequest && in.status != http.StatusRequestEntityTooLarge) {
		t.Fatalf("not a client error with a message: %#v", err)
	}
}
