package server

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"meeting.dev/meeting/internal/store/storetest"
	"meeting.dev/meeting/test/testbin"
)

// Names and usernames are refused, with the field named, when they hold
// invalid UTF-8 or invisible format characters; a body that sends a key
// twice, in any letter case, is refused.
func TestInputIsStrictText(t *testing.T) {
	h := newHarness(t, storetest.Open(t, "sqlite"), nil)
	alice := h.user("alice")
	h.user("bob")
	begin := h.clock().Add(time.Hour)
	times := fmt.Sprintf(`"begin_at":%d,"end_at":%d`, ms(begin), ms(begin.Add(time.Hour)))
	m := h.create(alice, map[string]any{"name": "plain", "begin_at": ms(begin), "end_at": ms(begin.Add(time.Hour))})
	for _, c := range []struct {
		name, method, path, body, msg string
	}{
		{"invalid UTF-8 in a name", "POST", "/auth/meeting/create", `{"name":"a` + "\xff" + `b",` + times + `}`, "field name must be valid UTF-8"},
		{"lone surrogate in a name", "POST", "/auth/meeting/create", `{"name":"a\ud800b",` + times + `}`, "name must be valid UTF-8"},
		{"replacement character in a name", "POST", "/auth/meeting/create", `{"name":"a` + "\uFFFD" + `b",` + times + `}`, "name must be valid UTF-8"},
		{"bidi override in a name", "POST", "/auth/meeting/create", `{"name":"invoice` + "\u202e" + `fdp.exe",` + times + `}`, "format characters"},
		{"zero-width space in a name", "POST", "/auth/meeting/create", `{"name":"a\u200bb",` + times + `}`, "format characters"},
		{"byte order mark in an edited name", "PUT", "/auth/meeting/edit", `{"identity":"` + m.Identity + `","name":"` + "\ufeff" + `x"}`, "format characters"},
		{"duplicate key in any case", "POST", "/auth/meeting/create", `{"name":"a","NAME":"b",` + times + `}`, "duplicate key"},
		{"duplicate key", "POST", "/auth/meeting/create", `{"name":"a","name":"b",` + times + `}`, "duplicate key"},
		{"duplicate key with a Kelvin sign", "POST", "/auth/meeting/join", `{"identity":"` + m.Identity + `","identit\u0131":"x"}`, ""},
		{"invalid UTF-8 in a participant", "POST", "/auth/meeting/create", `{"name":"a",` + times + `,"participants":["b` + "\xffob" + `"]}`, "field participants must be valid UTF-8"},
		{"zero-width joiner in a participant", "POST", "/auth/meeting/members", `{"identity":"` + m.Identity + `","usernames":["b\u200dob"]}`, "not a valid username"},
	} {
		t.Run(c.name, func(t *testing.T) { h.expect(h.do(c.method, c.path, alice, c.body), 400, c.msg) })
	}
	for _, c := range []struct{ name, path, body, msg string }{
		{"invalid UTF-8 in a username", "/user/register", `{"username":"car` + "\xff" + `ol","password":"password-carol"}`, "field username must be valid UTF-8"},
		{"bidi override in a username", "/user/register", `{"username":"car\u202eol","password":"password-carol"}`, "username must be"},
		{"invalid UTF-8 at login", "/user/login", `{"username":"ali` + "\xff" + `ce","password":"password-alice"}`, "field username must be valid UTF-8"},
		{"case-variant keys at login", "/user/login", `{"username":"alice","Username":"bob","password":"password-alice"}`, "duplicate key"},
		{"case-variant keys at register", "/user/register", `{"username":"carol","password":"password-carol","PASSWORD":"x"}`, "duplicate key"},
		{"invalid UTF-8 in a key", "/user/register", `{"username":"carol","password":"password-carol"` + ",\"\xff\":1}", "unknown field"},
	} {
		t.Run(c.name, func(t *testing.T) { h.expect(h.do("POST", c.path, "", c.body), 400, c.msg) })
	}
	// Nothing of the above was stored.
	r := h.do("GET", "/auth/meeting/list", alice, nil)
	h.expect(r, 200, "")
	if strings.Count(r.Raw, `"identity"`) != 1 {
		t.Errorf("refused creates were stored: %s", r.Raw)
	}
	// Ordinary text passes: letters of any script, emoji, inner spaces.
	h.create(alice, map[string]any{"name": "Réunion 会議 🎉", "begin_at": ms(begin), "end_at": ms(begin.Add(time.Hour))})
}

func testFoldKeyOff(t *testing.T) {
	for _, c := range [][2]string{{"name", "NAME"}, {"kind", "\u212aind"}, {"us", "u\u017f"}, {"Begin_At", "begin_at"}} {
		if strings.ToLower(c[0]) != strings.ToLower(c[1]) {
			t.Errorf("strings.ToLower(%q) != strings.ToLower(%q)", c[0], c[1])
		}
	}
	if strings.ToLower("name") == strings.ToLower("names") {
		t.Error("different keys fold alike")
	}
}

// Usernames compare without case and identities (UUIDs) in any case, on
// SQLite as on MySQL.
func TestNamesAndIdentitiesCompareWithoutCase(t *testing.T) {
	forEachDialect(t, func(t *testing.T, h *harness) {
		alice := h.user("alice")
		bob := h.user("bob")
		h.user("carol")
		begin := h.clock().Add(time.Hour)
		m := h.create(alice, map[string]any{"name": "x", "begin_at": ms(begin), "end_at": ms(begin.Add(time.Hour)),
			"participants": []string{"BOB", "Bob"}})
		upper := strings.ToUpper(m.Identity)
		h.expect(h.do("GET", "/auth/meeting/get?identity="+upper, bob, nil), 200, "")
		h.expect(h.do("POST", "/auth/meeting/members", alice, map[string]any{"identity": upper, "usernames": []string{"CaRoL"}}), 200, "")
		r := h.do("GET", "/auth/meeting/members?identity="+upper, alice, nil)
		h.expect(r, 200, "")
		if !strings.Contains(r.Raw, `"username":"bob"`) || !strings.Contains(r.Raw, `"username":"carol"`) {
			t.Errorf("members: %s", r.Raw)
		}
		h.expect(h.do("PUT", "/auth/meeting/edit", alice, map[string]any{"identity": upper, "name": "y"}), 200, "")
		h.expect(h.do("DELETE", "/auth/meeting/members?identity="+upper+"&username=CAROL", alice, nil), 200, "")
		h.expect(h.do("POST", "/auth/meeting/join", bob, map[string]any{"identity": upper}), 409, "")
		h.expect(h.do("POST", "/user/login", "", credentials{"ALICE", "password-alice"}), 200, "")
		h.expect(h.do("DELETE", "/auth/meeting/delete?identity="+upper, alice, nil), 200, "")
		h.expect(h.do("GET", "/auth/meeting/get?identity="+m.Identity, alice, nil), 404, "")
	})
}

// Headers too large for the API are answered in the envelope.
func TestLargeHeadersAnswerInTheEnvelope(t *testing.T) {
	h := newHarness(t, storetest.Open(t, "sqlite"), nil)
	big := strings.Repeat("h", 70<<10)
	r := h.doWith("GET", "/ping", "", nil, func(r *http.Request) { r.Header.Set("X-Big", big) })
	h.expect(r, 431, "request headers are larger than 65536 bytes")
	r = h.doWith("GET", "/auth/user/info", "Bearer "+big, nil, nil)
	h.expect(r, 431, "request headers are larger")
	h.expect(h.doWith("GET", "/ping", "", nil, func(r *http.Request) { r.Header.Set("X-Big", big[:60<<10]) }), 200, "")
}

// One access log line per request, without tokens, passwords or bodies.
func TestAccessLog(t *testing.T) {
	var logs testbin.Buffer
	h := newHarnessWith(t, storetest.Open(t, "sqlite"), harnessOptions{log: &logs})
	tok := h.user("alice")
	h.expect(h.do("PUT", "/auth/user/password", tok, passwordChange{"password-alice", "n3w-password"}), 200, "")
	h.expect(h.do("GET", "/auth/meeting/get?identity=5f0c3c5e-6f55-4a39-9b34-0d6f0a1d2b11", tok, nil), 401, "")
	h.expect(h.do("GET", "/nowhere?secret=1", "", nil), 404, "")
	out := logs.String()
	for _, want := range []string{
		`msg=request method=POST route=/user/register status=200`,
		`msg=request method=POST route=/user/login status=200`,
		`msg=request method=PUT route=/auth/user/password status=200`,
		`user_id=1`,
		`route=/auth/meeting/get status=401`,
		`route=unmatched status=404`,
		`client=192.0.2.1`,
		`latency=`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("access log lacks %q:\n%s", want, out)
		}
	}
	for _, secret := range []string{tok, "password-alice", "n3w-password", "secret=1", "5f0c3c5e", "Authorization"} {
		if strings.Contains(out, secret) {
			t.Errorf("the log holds %q:\n%s", secret, out)
		}
	}
}
