package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"meeting.dev/meeting/internal/meeting"
	"meeting.dev/meeting/internal/store/storetest"
	"meeting.dev/meeting/media/token"
)

// joinHarness is a harness that trusts the proxies in 10.0.0.0/8, with
// alice's meeting (bob invited) beginning in 30 s, inside the lead time.
type joinHarness struct {
	*harness
	alice, bob, carol string
	m                 meetingReply
}

func newJoinHarness(t *testing.T, dialect string) *joinHarness {
	t.Helper()
	h := &joinHarness{harness: newHarnessWith(t, storetest.Open(t, dialect), harnessOptions{trustedProxies: []string{"10.0.0.0/8"}})}
	h.alice, h.bob, h.carol = h.user("alice"), h.user("bob"), h.user("carol")
	now := h.clock()
	h.m = h.create(h.alice, map[string]any{"name": "standup", "begin_at": ms(now.Add(30 * time.Second)),
		"end_at": ms(now.Add(time.Hour)), "participants": []string{"bob"}})
	return h
}

func (h *joinHarness) join(tok string, body any) reply {
	h.t.Helper()
	return h.do("POST", "/auth/meeting/join", tok, body)
}

func TestJoin(t *testing.T) {
	for _, d := range storetest.Dialects {
		t.Run(d, func(t *testing.T) {
			t.Parallel()
			testJoin(t, newJoinHarness(t, d))
		})
	}
}

func testJoin(t *testing.T, h *joinHarness) {
	{
		id := h.m.Identity
		r := h.join(h.bob, map[string]string{"identity": id})
		h.expect(r, 200, "ok")

		// The reply's fields, exactly.
		var raw map[string]json.RawMessage
		h.decode(r, &raw)
		var keys []string
		for k := range raw {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		if got := strings.Join(keys, ","); got != "begin_at,end_at,expires_at,ice_servers,identity,name,phase,signal_url,token" {
			t.Errorf("join data has fields %s", got)
		}
		if !strings.Contains(string(raw["ice_servers"]), `"urls":["turn:127.0.0.1:3478?transport=udp"]`) {
			t.Errorf("ice_servers not in RTCIceServer shape: %s", raw["ice_servers"])
		}
		var j joinReply
		h.decode(r, &j)
		now := h.clock()
		if j.Identity != id || j.Name != "standup" || j.BeginAt != h.m.BeginAt || j.EndAt != h.m.EndAt || j.Phase != "Running" ||
			j.SignalURL != "ws://example.com/ws" || j.ExpiresAt != ms(now.Add(2*time.Minute)) {
			t.Errorf("join data %+v", j)
		}
		claims, err := token.Verify(h.rooms.room.TokenKey, j.Token, id, now)
		if err != nil || claims.Name != "bob" || claims.User == "" || claims.Role != "" {
			t.Errorf("join token: %+v, %v", claims, err)
		}
		if len(j.ICEServers) != 1 || !strings.HasSuffix(j.ICEServers[0].Username, ":"+claims.User) ||
			j.ICEServers[0].Credential != token.TURNPassword(h.rooms.room.TURNSecret, j.ICEServers[0].Username) {
			t.Errorf("ice servers %+v", j.ICEServers)
		}
		expiry, _, _ := strings.Cut(j.ICEServers[0].Username, ":")
		if exp, _ := strconv.ParseInt(expiry, 10, 64); exp != time.UnixMilli(h.m.EndAt).Add(policy.Grace).Unix() {
			t.Errorf("TURN credentials expire at %d, want end_at + grace", exp)
		}
		// The creator joins too, from a second device as well, as the host.
		for range 2 {
			r := h.join(h.alice, map[string]string{"identity": id})
			h.expect(r, 200, "")
			var a joinReply
			h.decode(r, &a)
			c, err := token.Verify(h.rooms.room.TokenKey, a.Token, id, now)
			if err != nil || c.Name != "alice" || c.Role != token.RoleHost || c.User == claims.User {
				t.Errorf("creator's join token: %+v, %v", c, err)
			}
		}

		unknown := "00000000-0000-4000-8000-000000000000"
		for _, c := range []struct {
			name   string
			token  string
			body   any
			status int
			msg    string
		}{
			{"no token", "", map[string]string{"identity": id}, 401, "missing token"},
			{"empty body", h.bob, "", 400, "body is empty"},
			{"not an object", h.bob, `["x"]`, 400, "must be a JSON object"},
			{"unknown field", h.bob, map[string]string{"identity": id, "room": "x"}, 400, `unknown field "room"`},
			{"missing identity", h.bob, map[string]string{}, 400, "identity is required"},
			{"bad identity", h.bob, map[string]string{"identity": "room 1"}, 400, "identity must be 1 to 64 characters"},
			{"wrong type", h.bob, `{"identity":42}`, 400, "field identity must be a string"},
			{"stranger", h.carol, map[string]string{"identity": id}, 403, "neither created it nor take part"},
			{"unknown meeting", h.bob, map[string]string{"identity": unknown}, 404, "not found"},
		} {
			t.Run(c.name, func(t *testing.T) { h.expect(h.join(c.token, c.body), c.status, c.msg) })
		}

		// The media is not up yet: 503 with Retry-After.
		h.rooms.set(meeting.Room{}, fmt.Errorf("sfu pod pending: %w", meeting.ErrMediaNotReady), meeting.RoomStatus{})
		r = h.join(h.bob, map[string]string{"identity": id})
		h.expect(r, 503, "still starting")
		if r.Header.Get("Retry-After") == "" {
			t.Error("503 without Retry-After")
		}
		// A cluster's Rooms says how long: Retry-After in whole seconds.
		h.rooms.set(meeting.Room{}, &meeting.NotReadyError{Identity: id, Reason: "the cluster has not started the meeting's media yet",
			RetryAfter: 89500 * time.Millisecond}, meeting.RoomStatus{})
		r = h.join(h.bob, map[string]string{"identity": id})
		h.expect(r, 503, "not started the meeting's media yet")
		if got := r.Header.Get("Retry-After"); got != "90" {
			t.Errorf("Retry-After %q, want 90", got)
		}
		h.rooms.set(newFakeRooms().room, nil, meeting.RoomStatus{Ready: true})

		// Before the room opens: 409 with begin_at in the data.
		later := h.create(h.alice, map[string]any{"name": "later", "begin_at": ms(now.Add(3 * time.Hour)), "end_at": ms(now.Add(4 * time.Hour)),
			"participants": []string{"bob"}})
		r = h.join(h.bob, map[string]string{"identity": later.Identity})
		h.expect(r, 409, "has not opened yet")
		var early struct {
			BeginAt int64 `json:"begin_at"`
			OpensAt int64 `json:"opens_at"`
		}
		h.decode(r, &early)
		if early.BeginAt != later.BeginAt || early.OpensAt != later.BeginAt-policy.LeadTime.Milliseconds() ||
			!strings.Contains(r.Msg, time.UnixMilli(later.BeginAt).UTC().Format(time.RFC3339)) {
			t.Errorf("409 data %+v, msg %q; want begin_at %d", early, r.Msg, later.BeginAt)
		}

		// In the grace after the end a dropped client can come back; after it, 410.
		h.advance(time.Hour + policy.Grace - time.Second)
		h.alice, h.bob = h.login("alice"), h.login("bob") // API tokens last an hour
		r = h.join(h.bob, map[string]string{"identity": id})
		h.expect(r, 200, "")
		h.decode(r, &j)
		if j.Phase != "Ending" {
			t.Errorf("join in the grace: phase %s, want Ending", j.Phase)
		}
		h.advance(time.Second)
		h.expect(h.join(h.bob, map[string]string{"identity": id}), 410, "ended")

		// A removed participant is refused next time.
		h.expect(h.do("DELETE", "/auth/meeting/members?identity="+later.Identity+"&username=alice", h.alice, nil), 400, "cannot be removed")
		h.expect(h.do("DELETE", "/auth/meeting/members?identity="+later.Identity+"&username=bob", h.alice, nil), 200, "")
		h.advance(2 * time.Hour) // later is open now
		h.alice, h.bob = h.login("alice"), h.login("bob")
		h.expect(h.join(h.bob, map[string]string{"identity": later.Identity}), 403, "")
		h.expect(h.join(h.alice, map[string]string{"identity": later.Identity}), 200, "")
	}
}

// login returns a fresh API token of a registered user.
func (h *joinHarness) login(name string) string {
	h.t.Helper()
	r := h.do("POST", "/user/login", "", credentials{name, "password-" + name})
	h.expect(r, 200, "")
	var tok tokenReply
	h.decode(r, &tok)
	return tok.Token
}

func TestJoinIsRateLimited(t *testing.T) {
	h := newJoinHarness(t, "sqlite")
	body := map[string]string{"identity": h.m.Identity}
	for i := 0; i < 10; i++ {
		h.expect(h.join(h.bob, body), 200, "")
	}
	r := h.join(h.bob, body)
	h.expect(r, 429, "too many join attempts")
	if r.Header.Get("Retry-After") == "" {
		t.Error("429 without Retry-After")
	}
	h.expect(h.join(h.alice, body), 200, "") // per user
	h.advance(3 * time.Second)
	h.expect(h.join(h.bob, body), 200, "")
	h.expect(h.join(h.bob, body), 429, "")
}

// signal_url is absolute on the scheme and host the client reached the API
// by; X-Forwarded-Proto and -Host count only from a trusted proxy.
func TestJoinSignalURL(t *testing.T) {
	h := newJoinHarness(t, "sqlite")
	body := map[string]string{"identity": h.m.Identity}
	forwarded := func(remote string) func(*http.Request) {
		return func(r *http.Request) {
			r.RemoteAddr = remote
			r.Header.Set("X-Forwarded-Proto", "https")
			r.Header.Set("X-Forwarded-Host", "meet.example.org")
		}
	}
	for _, c := range []struct {
		name   string
		change func(*http.Request)
		want   string
	}{
		{"host of the request", func(r *http.Request) { r.Host = "10.0.0.5:8080" }, "ws://10.0.0.5:8080/ws"},
		{"trusted proxy", forwarded("10.1.2.3:4567"), "wss://meet.example.org/ws"},
		{"untrusted client", forwarded("192.0.2.1:4567"), "ws://example.com/ws"},
		{"trusted proxy, list of values", func(r *http.Request) {
			r.RemoteAddr = "10.1.2.3:4567"
			r.Header.Set("X-Forwarded-Proto", "https, http")
			r.Header.Set("X-Forwarded-Host", "a.example, b.example")
		}, "wss://a.example/ws"},
		{"trusted proxy, nonsense", func(r *http.Request) {
			r.RemoteAddr = "10.1.2.3:4567"
			r.Header.Set("X-Forwarded-Proto", "gopher")
			r.Header.Set("X-Forwarded-Host", "evil.example/path")
		}, "ws://example.com/ws"},
	} {
		t.Run(c.name, func(t *testing.T) {
			h.advance(time.Second) // stay within the join rate
			r := h.doWith("POST", "/auth/meeting/join", h.bob, body, c.change)
			h.expect(r, 200, "")
			var j joinReply
			h.decode(r, &j)
			if j.SignalURL != c.want {
				t.Errorf("signal_url %q, want %q", j.SignalURL, c.want)
			}
		})
	}
	h.rooms.set(meeting.Room{SignalURL: "wss://sfu.example/x", TokenKey: []byte(strings.Repeat("k", 32))}, nil, meeting.RoomStatus{Ready: true})
	r := h.join(h.bob, body)
	var j joinReply
	h.decode(r, &j)
	if j.SignalURL != "wss://sfu.example/x" || j.ICEServers == nil || len(j.ICEServers) != 0 || !strings.Contains(r.Raw, `"ice_servers":[]`) {
		t.Errorf("absolute signal URL, no TURN: %s", r.Raw)
	}
}

// list and get show each meeting's phase and, while Running or Ending, how
// many are online.
func TestPhaseInReplies(t *testing.T) {
	h := newJoinHarness(t, "sqlite") // h.m opens now; the fake media is ready with 3 online
	now := h.clock()
	later := h.create(h.alice, map[string]any{"name": "later", "begin_at": ms(now.Add(3 * time.Hour)), "end_at": ms(now.Add(4 * time.Hour))})
	if later.Phase != "Scheduled" || later.ParticipantsOnline != 0 {
		t.Errorf("create reply: phase %q online %d", later.Phase, later.ParticipantsOnline)
	}
	var l listReply
	h.decode(h.do("GET", "/auth/meeting/list", h.alice, nil), &l)
	if len(l.List) != 2 || l.List[0].Phase != "Scheduled" || l.List[0].ParticipantsOnline != 0 ||
		l.List[1].Phase != "Running" || l.List[1].ParticipantsOnline != 3 {
		t.Errorf("list: %+v", l.List)
	}
	if !strings.Contains(h.do("GET", "/auth/meeting/list", h.alice, nil).Raw, `"phase":"Scheduled","participants_online":0`) {
		t.Error("participants_online is not always present")
	}
	h.rooms.set(newFakeRooms().room, nil, meeting.RoomStatus{Online: 1})
	var d detailReply
	h.decode(h.do("GET", "/auth/meeting/get?identity="+h.m.Identity, h.bob, nil), &d)
	if d.Phase != "Starting" || d.ParticipantsOnline != 0 {
		t.Errorf("get while the media starts: phase %q online %d", d.Phase, d.ParticipantsOnline)
	}
	h.advance(time.Hour)
	h.bob = h.login("bob")
	h.decode(h.do("GET", "/auth/meeting/get?identity="+h.m.Identity, h.bob, nil), &d)
	if d.Phase != "Ending" || d.ParticipantsOnline != 1 {
		t.Errorf("get in the grace: phase %q online %d", d.Phase, d.ParticipantsOnline)
	}
	h.advance(policy.Grace)
	h.decode(h.do("GET", "/auth/meeting/get?identity="+h.m.Identity, h.bob, nil), &d)
	if d.Phase != "Ended" || d.ParticipantsOnline != 0 {
		t.Errorf("get after the grace: phase %q online %d", d.Phase, d.ParticipantsOnline)
	}
}
