package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"meeting.dev/meeting/internal/meeting"
	"meeting.dev/meeting/internal/store/storetest"
)

func forEachDialect(t *testing.T, f func(t *testing.T, h *harness)) {
	for _, d := range storetest.Dialects {
		t.Run(d, func(t *testing.T) {
			t.Parallel()
			f(t, newHarness(t, storetest.Open(t, d), nil))
		})
	}
}

func TestServiceRoutes(t *testing.T) {
	h := newHarness(t, storetest.Open(t, "sqlite"), nil)
	r := h.do("GET", "/ping", "", nil)
	if r.Status != 200 || !strings.Contains(r.Raw, `"message":"pong"`) {
		t.Errorf("/ping = %d %s; want the seed's {\"message\":\"pong\"}", r.Status, r.Raw)
	}
	h.expect(h.do("GET", "/healthz", "", nil), 200, "ok")
	h.expect(h.do("GET", "/readyz", "", nil), 200, "ok")
	h.expect(h.do("GET", "/nowhere", "", nil), 404, "no such endpoint")
	h.expect(h.do("PATCH", "/auth/meeting/edit", "", nil), 405, "not allowed")
	m := h.do("GET", "/metrics", "", nil)
	if m.Status != 200 || !strings.Contains(m.Raw, `meeting_http_requests_total{code="200",method="GET",route="/ping"} 1`) ||
		!strings.Contains(m.Raw, `meeting_http_request_duration_seconds_bucket`) || !strings.Contains(m.Raw, `route="unmatched"`) {
		t.Errorf("metrics lack request counts or latencies:\n%s", m.Raw)
	}
	if doc := h.do("GET", "/openapi.yaml", "", nil); doc.Status != 200 || !strings.HasPrefix(doc.Raw, "openapi: 3") {
		t.Errorf("/openapi.yaml = %d", doc.Status)
	}
}

func TestReadyzFailsWithoutDatabase(t *testing.T) {
	st := storetest.Open(t, "sqlite")
	h := newHarness(t, st, nil)
	st.Close()
	h.expect(h.do("GET", "/readyz", "", nil), 503, "database unavailable")
	h.expect(h.do("GET", "/healthz", "", nil), 200, "")
}

func TestAccounts(t *testing.T) {
	forEachDialect(t, func(t *testing.T, h *harness) {
		reg := h.do("POST", "/user/register", "", credentials{"alice", "s3cret-pass"})
		h.expect(reg, 200, "")
		var u userReply
		h.decode(reg, &u)
		if u.Username != "alice" || u.ID == 0 || u.CreatedAt == 0 {
			t.Errorf("registered user = %+v", u)
		}
		for _, c := range []struct {
			name   string
			body   any
			status int
			msg    string
		}{
			{"taken", credentials{"alice", "another-pass"}, 409, "taken"},
			{"short username", credentials{"al", "s3cret-pass"}, 400, "username must be"},
			{"upper-case username", credentials{"Alice2", "s3cret-pass"}, 400, "username must be"},
			{"username with space", credentials{"al ice", "s3cret-pass"}, 400, "username must be"},
			{"short password", credentials{"bob", "short"}, 400, "password must be 8 to 72 bytes"},
			{"long password", credentials{"bob", strings.Repeat("p", 73)}, 400, "password must be 8 to 72 bytes"},
			{"empty body", "", 400, "body is empty"},
			{"unknown field", `{"username":"bob","password":"s3cret-pass","admin":true}`, 400, `unknown field "admin"`},
			{"number for string", `{"username":5,"password":"s3cret-pass"}`, 400, "field username must be a string"},
		} {
			t.Run("register "+c.name, func(t *testing.T) { h.expect(h.do("POST", "/user/register", "", c.body), c.status, c.msg) })
		}

		login := h.do("POST", "/user/login", "", credentials{"alice", "s3cret-pass"})
		h.expect(login, 200, "")
		var tok tokenReply
		h.decode(login, &tok)
		if tok.Token == "" || tok.ExpiresAt != h.clock().Add(time.Hour).Truncate(time.Second).UnixMilli() {
			t.Errorf("token reply = %+v", tok)
		}
		h.expect(h.do("GET", "/auth/user/info", tok.Token, nil), 200, "")
		h.expect(h.do("GET", "/auth/user/info", "Bearer "+tok.Token, nil), 200, "")
		h.expect(h.do("GET", "/auth/user/info", "bearer  "+tok.Token, nil), 200, "")
		h.expect(h.do("GET", "/auth/user/info", "", nil), 401, "missing token")
		h.expect(h.do("GET", "/auth/user/info", "Bearer ", nil), 401, "missing token")
		h.expect(h.do("GET", "/auth/user/info", "nonsense", nil), 401, "invalid or expired token")

		wrong := h.do("POST", "/user/login", "", credentials{"alice", "wrong-pass"})
		unknown := h.do("POST", "/user/login", "", credentials{"nobody", "wrong-pass"})
		h.expect(wrong, 401, "invalid username or password")
		if wrong.Raw != unknown.Raw || unknown.Status != 401 {
			t.Errorf("a wrong password and an unknown user must look alike: %s vs %s", wrong.Raw, unknown.Raw)
		}
		h.expect(h.do("POST", "/user/login", "", credentials{"alice", ""}), 400, "required")

		// Change password: the old one stops working.
		h.expect(h.do("PUT", "/auth/user/password", tok.Token, passwordChange{"bad-old-pass", "n3w-password"}), 403, "old_password is wrong")
		h.expect(h.do("PUT", "/auth/user/password", tok.Token, passwordChange{"s3cret-pass", "short"}), 400, "new_password must be")
		changed := h.do("PUT", "/auth/user/password", tok.Token, passwordChange{"s3cret-pass", "n3w-password"})
		h.expect(changed, 200, "")
		h.decode(changed, &tok)
		h.expect(h.do("POST", "/user/login", "", credentials{"alice", "s3cret-pass"}), 401, "")
		h.expect(h.do("POST", "/user/login", "", credentials{"alice", "n3w-password"}), 200, "")

		// Tokens expire.
		h.expect(h.do("GET", "/auth/user/info", tok.Token, nil), 200, "")
		h.advance(time.Hour + time.Second)
		h.expect(h.do("GET", "/auth/user/info", tok.Token, nil), 401, "invalid or expired token")
	})
}

func TestMeetings(t *testing.T) {
	forEachDialect(t, func(t *testing.T, h *harness) {
		alice, bob, carol := h.user("alice"), h.user("bob"), h.user("carol")
		now := h.clock()
		begin, end := now.Add(time.Hour), now.Add(2*time.Hour)
		m := h.create(alice, map[string]any{"name": "  planning  ", "begin_at": ms(begin), "end_at": ms(end), "participants": []string{"bob", "bob"}})
		if m.Name != "planning" || m.BeginAt != ms(begin) || m.EndAt != ms(end) || len(m.Identity) != 36 {
			t.Fatalf("created %+v", m)
		}
		id := m.Identity
		unknownID := "00000000-0000-4000-8000-000000000000"

		create := func(body any) reply { return h.do("POST", "/auth/meeting/create", alice, body) }
		valid := func(change map[string]any) map[string]any {
			b := map[string]any{"name": "x", "begin_at": ms(begin), "end_at": ms(end)}
			for k, v := range change {
				if v == nil {
					delete(b, k)
				} else {
					b[k] = v
				}
			}
			return b
		}
		for _, c := range []struct {
			name   string
			body   any
			status int
			msg    string
		}{
			{"empty body", "", 400, "body is empty"},
			{"malformed", `{"name":`, 400, "ends in the middle"},
			{"syntax", `{"name" "x"}`, 400, "malformed JSON"},
			{"array", `[1,2]`, 400, "must be a JSON object"},
			{"trailing data", `{"name":"x","begin_at":1,"end_at":2} {}`, 400, "data after the JSON object"},
			{"unknown field", valid(map[string]any{"begin": 1}), 400, `unknown field "begin"`},
			{"string time", valid(map[string]any{"begin_at": "2030-01-01"}), 400, "begin_at must be a whole number"},
			{"fractional time", `{"name":"x","begin_at":1.5,"end_at":2}`, 400, "begin_at must be a whole number"},
			{"missing name", valid(map[string]any{"name": nil}), 400, "required"},
			{"missing end", valid(map[string]any{"end_at": nil}), 400, "required"},
			{"blank name", valid(map[string]any{"name": "   "}), 400, "must not be empty"},
			{"long name", valid(map[string]any{"name": strings.Repeat("名", 201)}), 400, "has 201 characters; at most 200"},
			{"control char", valid(map[string]any{"name": "a\u0007b"}), 400, "control characters"},
			{"end before begin", valid(map[string]any{"end_at": ms(begin.Add(-time.Minute))}), 400, "end_at must be after begin_at"},
			{"end equals begin", valid(map[string]any{"end_at": ms(begin)}), 400, "end_at must be after begin_at"},
			{"too long", valid(map[string]any{"end_at": ms(begin.Add(25 * time.Hour))}), 400, "at most 24h"},
			{"already over", valid(map[string]any{"begin_at": ms(now.Add(-2 * time.Hour)), "end_at": ms(now.Add(-time.Hour))}), 400, "in the past"},
			{"seconds not ms", valid(map[string]any{"begin_at": begin.Unix(), "end_at": end.Unix()}), 400, "between"},
			{"far future", valid(map[string]any{"begin_at": int64(1) << 62, "end_at": int64(1)<<62 + 1}), 400, "between"},
			{"identity taken", valid(map[string]any{"identity": strings.ToUpper(id)}), 409, "already exists"},
			{"identity not one", valid(map[string]any{"identity": "a b"}), 400, "identity must be 1 to 64 characters"},
			{"max_participants 0", valid(map[string]any{"max_participants": 0}), 400, "max_participants is 0; it must be from 1 to 1000"},
			{"max_participants fraction", valid(map[string]any{"max_participants": 2.5}), 400, "max_participants must be a whole number"},
			{"unknown participant", valid(map[string]any{"participants": []string{"bob", "ghost"}}), 404, "no user named ghost"},
			{"bad participant", valid(map[string]any{"participants": []string{"Not Valid"}}), 400, "not a valid username"},
			{"too large", `{"name":"` + strings.Repeat("x", 70<<10) + `"}`, 413, "larger than 65536 bytes"},
		} {
			t.Run("create "+c.name, func(t *testing.T) { h.expect(create(c.body), c.status, c.msg) })
		}
		// None of the refused creates wrote anything.
		if _, n, _ := h.store.ListMeetings(t.Context(), 1, meeting.ListOptions{Limit: 1}); n != 1 {
			t.Errorf("alice has %d meetings after refused creates, want 1", n)
		}

		// Who sees what.
		for _, c := range []struct {
			who    string
			token  string
			status int
		}{{"creator", alice, 200}, {"participant", bob, 200}, {"stranger", carol, 403}} {
			h.expect(h.do("GET", "/auth/meeting/get?identity="+id, c.token, nil), c.status, "")
			lr := h.do("GET", "/auth/meeting/list", c.token, nil)
			var l listReply
			h.decode(lr, &l)
			if want := int64(map[bool]int{true: 1}[c.status == 200]); l.Count != want {
				t.Errorf("%s lists %d meetings, want %d", c.who, l.Count, want)
			}
		}
		var d detailReply
		h.decode(h.do("GET", "/auth/meeting/get?identity="+id, bob, nil), &d)
		if len(d.Participants) != 2 || d.Participants[0].Username != "alice" || d.Participants[1].Username != "bob" {
			t.Errorf("participants = %+v", d.Participants)
		}
		h.expect(h.do("GET", "/auth/meeting/get?identity="+unknownID, alice, nil), 404, "not found")
		h.expect(h.do("GET", "/auth/meeting/get?identity=no%20pe", alice, nil), 400, "identity must be 1 to 64 characters")
		h.expect(h.do("GET", "/auth/meeting/get?identity=nope", alice, nil), 404, "not found")
		h.expect(h.do("GET", "/auth/meeting/get", alice, nil), 400, "identity is required")

		// Edits change only what they carry (the seed reset absent times to 1970).
		edit := func(token string, body any) reply { return h.do("PUT", "/auth/meeting/edit", token, body) }
		r := edit(alice, map[string]any{"identity": id, "name": "renamed"})
		h.expect(r, 200, "")
		var e meetingReply
		h.decode(r, &e)
		if e.Name != "renamed" || e.BeginAt != ms(begin) || e.EndAt != ms(end) {
			t.Errorf("name-only edit gave %+v", e)
		}
		h.expect(edit(alice, map[string]any{"identity": id, "end_at": ms(end.Add(time.Hour))}), 200, "")
		h.decode(h.do("GET", "/auth/meeting/get?identity="+id, alice, nil), &d)
		if d.Name != "renamed" || d.BeginAt != ms(begin) || d.EndAt != ms(end.Add(time.Hour)) {
			t.Errorf("after end-only edit: %+v", d.meetingReply)
		}
		for _, c := range []struct {
			name   string
			token  string
			body   any
			status int
			msg    string
		}{
			{"empty body", alice, "", 400, "body is empty"},
			{"no identity", alice, map[string]any{"name": "x"}, 400, "identity is required"},
			{"nothing to change", alice, map[string]any{"identity": id}, 400, "nothing to change"},
			{"end before begin", alice, map[string]any{"identity": id, "end_at": ms(begin.Add(-time.Minute))}, 400, "end_at must be after begin_at"},
			{"begin after end", alice, map[string]any{"identity": id, "begin_at": ms(end.Add(2 * time.Hour))}, 400, "end_at must be after begin_at"},
			{"null name", alice, map[string]any{"identity": id, "name": ""}, 400, "must not be empty"},
			{"participants", alice, map[string]any{"identity": id, "participants": []string{"carol"}}, 400, "/auth/meeting/members"},
			{"unknown", alice, map[string]any{"identity": unknownID, "name": "x"}, 404, "not found"},
			{"participant", bob, map[string]any{"identity": id, "name": "x"}, 403, "not yours"},
			{"stranger", carol, map[string]any{"identity": id, "name": "x"}, 403, "not yours"},
			{"no token", "", map[string]any{"identity": id, "name": "x"}, 401, "missing token"},
		} {
			t.Run("edit "+c.name, func(t *testing.T) { h.expect(edit(c.token, c.body), c.status, c.msg) })
		}
		h.decode(h.do("GET", "/auth/meeting/get?identity="+id, alice, nil), &d)
		if d.Name != "renamed" || d.EndAt != ms(end.Add(time.Hour)) {
			t.Errorf("refused edits changed the meeting: %+v", d.meetingReply)
		}

		// Participants.
		members := func(token, method string, body any, query string) reply {
			return h.do(method, "/auth/meeting/members"+query, token, body)
		}
		h.expect(members(bob, "POST", membersInput{id, []string{"carol"}}, ""), 403, "not yours")
		h.expect(members(alice, "POST", membersInput{id, []string{"carol", "ghost"}}, ""), 404, "ghost")
		h.expect(h.do("GET", "/auth/meeting/get?identity="+id, carol, nil), 403, "")
		h.expect(members(alice, "POST", membersInput{id, nil}, ""), 400, "at least one")
		h.expect(members(alice, "POST", membersInput{"-x", []string{"carol"}}, ""), 400, "identity must be")
		r = members(alice, "POST", membersInput{id, []string{"carol"}}, "")
		h.expect(r, 200, "")
		var us []userReply
		h.decode(r, &us)
		if len(us) != 3 {
			t.Errorf("after adding carol: %+v", us)
		}
		h.expect(h.do("GET", "/auth/meeting/get?identity="+id, carol, nil), 200, "")
		h.expect(members(carol, "GET", nil, "?identity="+id), 200, "")
		h.expect(members(bob, "DELETE", nil, "?identity="+id+"&username=carol"), 403, "")
		h.expect(members(alice, "DELETE", nil, "?identity="+id+"&username=Bad%20Name"), 400, "not a valid username")
		h.expect(members(alice, "DELETE", nil, "?identity="+id+"&username=carol"), 200, "")
		h.expect(members(alice, "DELETE", nil, "?identity="+id+"&username=carol"), 404, "does not take part")
		h.expect(h.do("GET", "/auth/meeting/get?identity="+id, carol, nil), 403, "")

		// Delete.
		h.expect(h.do("DELETE", "/auth/meeting/delete?identity="+id, bob, nil), 403, "not yours")
		h.expect(h.do("DELETE", "/auth/meeting/delete?identity="+unknownID, alice, nil), 404, "")
		h.expect(h.do("DELETE", "/auth/meeting/delete", alice, nil), 400, "identity is required")
		h.expect(h.do("DELETE", "/auth/meeting/delete?identity="+id, alice, nil), 200, "")
		h.expect(h.do("GET", "/auth/meeting/get?identity="+id, alice, nil), 404, "")
		h.expect(h.do("GET", "/auth/meeting/get?identity="+id, bob, nil), 404, "")
	})
}

func TestListPaging(t *testing.T) {
	h := newHarness(t, storetest.Open(t, "sqlite"), nil)
	alice := h.user("alice")
	base := h.clock().Add(time.Hour)
	for i := 0; i < 105; i++ {
		name := fmt.Sprintf("meeting %03d", i)
		if i%10 == 0 {
			name = fmt.Sprintf("standup %03d", i)
		}
		h.create(alice, map[string]any{"name": name, "begin_at": ms(base.Add(time.Duration(i) * time.Minute)), "end_at": ms(base.Add(time.Duration(i)*time.Minute + time.Hour))})
	}
	list := func(q string) (listReply, reply) {
		r := h.do("GET", "/auth/meeting/list"+q, alice, nil)
		var l listReply
		if r.Status == 200 {
			h.decode(r, &l)
		}
		return l, r
	}
	l, _ := list("")
	if l.Count != 105 || len(l.List) != 20 || l.List[0].Name != "meeting 104" {
		t.Errorf("default page: count %d, %d items, first %q", l.Count, len(l.List), l.List[0].Name)
	}
	if l, _ = list("?size=1000"); len(l.List) != 100 {
		t.Errorf("size=1000 gave %d items; the cap is 100", len(l.List))
	}
	if l, _ = list("?page=6&size=20"); len(l.List) != 5 {
		t.Errorf("last page has %d items, want 5", len(l.List))
	}
	if l, _ = list("?page=99"); len(l.List) != 0 || l.Count != 105 {
		t.Errorf("page past the end: %d items, count %d", len(l.List), l.Count)
	}
	if l, _ = list("?keyword=standup"); l.Count != 11 {
		t.Errorf("keyword=standup: count %d, want 11", l.Count)
	}
	if l, _ = list("?name=standup&size=5&page=3"); l.Count != 11 || len(l.List) != 1 {
		t.Errorf("name=standup page 3: count %d, %d items", l.Count, len(l.List))
	}
	for _, q := range []string{"?page=0", "?page=-1", "?page=x", "?size=0", "?size=1.5", "?keyword=a&name=b", "?keyword=" + strings.Repeat("k", 201)} {
		if _, r := list(q); r.Status != 400 {
			t.Errorf("list%s = %d, want 400", q, r.Status)
		}
	}
}

// panickyStore is a store whose list panics, to show that a panic still
// answers in the envelope.
type panickyStore struct{ meeting.Store }

func (panickyStore) ListMeetings(context.Context, uint64, meeting.ListOptions) ([]meeting.Meeting, int64, error) {
	panic("boom")
}

func TestPanicAnswers500(t *testing.T) {
	st := storetest.Open(t, "sqlite")
	h := newHarness(t, st, func(s meeting.Store) meeting.Store { return panickyStore{s} })
	tok := h.user("alice")
	h.expect(h.do("GET", "/auth/meeting/list", tok, nil), http.StatusInternalServerError, "internal error")
	h.expect(h.do("GET", "/ping", "", nil), 200, "")
}

// Ready (the cluster's cache in the api role) is asked by /readyz after the
// database; Handlers are mounted as GET routes beside the API's.
func TestReadyCheckAndHandlers(t *testing.T) {
	var notReady atomic.Bool
	notReady.Store(true)
	h := newHarnessWith(t, storetest.Open(t, "sqlite"), harnessOptions{
		ready: func(context.Context) error {
			if notReady.Load() {
				return errors.New("the cluster cache has not synced yet")
			}
			return nil
		},
		handlers: map[string]http.Handler{"/rooms/:identity/ws": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, "room path "+r.URL.Path)
		})},
	})
	h.expect(h.do("GET", "/readyz", "", nil), 503, "not synced")
	notReady.Store(false)
	h.expect(h.do("GET", "/readyz", "", nil), 200, "ok")
	if r := h.do("GET", "/rooms/abc/ws", "", nil); r.Status != 200 || r.Raw != "room path /rooms/abc/ws" {
		t.Errorf("mounted handler: %d %q", r.Status, r.Raw)
	}
}
