package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

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
		`{"name":"a","NAME":"b","begin_at":1893574800000,"end_at":1893578400000}`,
		`{"name":"a","name":"b","begin_at":1893574800000,"end_at":1893578400000}`,
		`{"identity":"5F0C3C5E-6F55-4A39-9B34-0D6F0A1D2B11","Identity":"x"}`,
		"{\"name\":\"a\xffb\",\"begin_at\":1893574800000,\"end_at\":1893578400000}",
		`{"name":"a\u202eb","begin_at":1893574800000,"end_at":1893578400000}`,
		`{"name":"a\ud800b","begin_at":1893574800000,"end_at":1893578400000,"participants":["BOB"]}`,
		"{\"username\":\"bob\",\"password\":\"password\",\"pa\u017fsword\":\"x\"}",
		"{\"name\":\"\u200b\",\"begin_at\":1893574800000,\"end_at\":1893578400000,\"participants\":[\"b\xc0b\"]}",
	} {
		f.Add([]byte(s))
	}
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, body []byte) {
		// Whatever is accepted is valid UTF-8 with each key once, in any
		// letter case (checked here by a walk of its own).
		accepted := func(what string) {
			t.Helper()
			if !utf8.Valid(body) {
				t.Fatalf("%s accepted invalid UTF-8: %q", what, body)
			}
			if k, dup := repeatedKey(body); dup {
				t.Fatalf("%s accepted the key %q twice: %q", what, k, body)
			}
		}
		cleanText := func(what, s string) {
			t.Helper()
			if !utf8.ValidString(s) || strings.ContainsRune(s, utf8.RuneError) || strings.IndexFunc(s, func(r rune) bool { return unicode.Is(unicode.Cf, r) }) >= 0 {
				t.Fatalf("%s accepted %q", what, s)
			}
		}
		validID := func(id string) bool {
			_, err := checkIdentity(id)
			return err == nil && meeting.CheckIdentity(id) == nil
		}
		c, err := parseCreate(bytes.NewReader(body))
		if err == nil {
			accepted("create")
			if (c.Identity != "" && !validID(c.Identity)) || c.MaxParticipants < 0 || c.MaxParticipants > meeting.MaxParticipantsLimit {
				t.Fatalf("create accepted identity %q, max_participants %d", c.Identity, c.MaxParticipants)
			}
			for _, p := range c.Participants {
				if p != strings.ToLower(p) || checkUsername(p) != nil {
					t.Fatalf("create accepted participant %q", p)
				}
			}
		}
		if err == nil {
			c.Name, err = meeting.CheckName(c.Name)
		}
		if err == nil {
			err = meeting.CheckWindow(c.BeginAt, c.EndAt, now)
		}
		if err != nil {
			mustBeClientError(t, err)
		} else if cleanText("create name", c.Name); c.Name == "" || !c.EndAt.After(c.BeginAt) || c.EndAt.Sub(c.BeginAt) > meeting.MaxDuration || !c.EndAt.After(now) {
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
		} else if accepted("edit"); !validID(id) || id != strings.ToLower(id) || (e.Name != nil && *e.Name == "") {
			t.Fatalf("accepted an invalid edit: %q %+v", id, e)
		} else if e.Name != nil {
			cleanText("edit name", *e.Name)
		}
		if id, err := parseJoin(bytes.NewReader(body)); err != nil {
			mustBeClientError(t, err)
		} else if accepted("join"); !validID(id) || id != strings.ToLower(id) {
			t.Fatalf("accepted an invalid join: %q", id)
		}
		for _, register := range []bool{true, false} {
			if in, err := parseCredentials(bytes.NewReader(body), register); err != nil {
				mustBeClientError(t, err)
			} else if accepted("credentials"); checkUsername(in.Username) != nil || len(in.Password) > 72 {
				t.Fatalf("accepted credentials %q", in.Username)
			}
		}
	})
}

// repeatedKey walks the top-level object of body, when it is one, and
// returns a key that appears twice ignoring case (Unicode simple folding,
// as encoding/json matches keys).
func repeatedKey(body []byte) (string, bool) {
	dec := json.NewDecoder(bytes.NewReader(body))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return "", false
	}
	var keys []string
	depth := 1
	expectKey := true
	for depth > 0 {
		t, err := dec.Token()
		if err != nil {
			return "", false
		}
		switch v := t.(type) {
		case json.Delim:
			if v == '{' || v == '[' {
				depth++
			} else {
				depth--
			}
			if depth == 1 {
				expectKey = true
			}
			continue
		case string:
			if depth == 1 && expectKey {
				for _, k := range keys {
					if strings.EqualFold(k, v) {
						return v, true
					}
				}
				keys = append(keys, v)
				expectKey = false
				continue
			}
		}
		if depth == 1 {
			expectKey = true
		}
	}
	return "", false
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
