package server

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/bcrypt"

	"meeting.dev/meeting/internal/auth"
	"meeting.dev/meeting/internal/meeting"
	"meeting.dev/meeting/internal/schedule"
	"meeting.dev/meeting/internal/store"
)

// policy is the harness's lead time and grace.
var policy = schedule.Policy{LeadTime: time.Minute, Grace: 2 * time.Minute}

func TestMain(m *testing.M) {
	gin.SetMode(gin.ReleaseMode)
	os.Exit(m.Run())
}

// harness is the API on a real database with a clock the test moves.
type harness struct {
	t      testing.TB
	engine *gin.Engine
	tokens *auth.Tokens
	// throttle is the API's login throttle.
	throttle *auth.LoginThrottle
	store    *store.Store
	rooms    *fakeRooms
	mu       sync.Mutex
	now      time.Time
}

// harnessOptions changes the harness's defaults.
type harnessOptions struct {
	// wrap wraps the store the meeting service uses.
	wrap func(meeting.Store) meeting.Store
	// throttle is the login throttle's configuration; by default 100
	// attempts a minute per address and user, 1,000 per address and 1,000
	// failures per user, so that tests are not throttled by accident.
	throttle *auth.LoginThrottleConfig
	// register is the registration limiter; by default 10,000 per address
	// and 1,000 a second.
	register *auth.Limiter
	// log receives the API's logs (text); discarded when nil.
	log io.Writer
	// trustedProxies are the API's TrustedProxies.
	trustedProxies []string
	// ready and handlers are the API's Ready and Handlers.
	ready    func(context.Context) error
	handlers map[string]http.Handler
}

func newHarness(t testing.TB, st *store.Store, wrap func(meeting.Store) meeting.Store) *harness {
	t.Helper()
	return newHarnessWith(t, st, harnessOptions{wrap: wrap})
}

func newHarnessWith(t testing.TB, st *store.Store, o harnessOptions) *harness {
	t.Helper()
	if o.throttle == nil {
		o.throttle = &auth.LoginThrottleConfig{PairBurst: 100, PairEvery: time.Minute / 100,
			AddressBurst: 1000, AddressEvery: time.Minute / 1000, UserBurst: 1000, UserEvery: time.Minute / 1000}
	}
	h := &harness{t: t, store: st, now: time.Now().UTC().Truncate(time.Millisecond), rooms: newFakeRooms()}
	var err error
	h.tokens, err = auth.NewTokens([]byte(strings.Repeat("k", 32)), time.Hour, h.clock)
	if err != nil {
		t.Fatal(err)
	}
	var ms meeting.Store = st
	if o.wrap != nil {
		ms = o.wrap(st)
	}
	if o.log == nil {
		o.log = io.Discard
	}
	log := slog.New(slog.NewTextHandler(o.log, nil))
	svc, err := meeting.New(meeting.Config{Store: ms, Rooms: h.rooms, Policy: policy, Now: h.clock, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	h.throttle = auth.NewLoginThrottle(*o.throttle, h.clock)
	if o.register == nil {
		o.register = auth.NewLimiter(10_000, time.Millisecond, h.clock)
	}
	h.engine, err = New(Config{Accounts: st, Meetings: svc, Tokens: h.tokens, Hasher: auth.Hasher{Cost: bcrypt.MinCost},
		Log: log, Registry: prometheus.NewRegistry(), Now: h.clock,
		LoginThrottle: h.throttle, RegisterLimiter: o.register, TrustedProxies: o.trustedProxies,
		Ready: o.ready, Handlers: o.handlers})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// fakeRooms is the media of every meeting as a test sets it.
type fakeRooms struct {
	mu     sync.Mutex
	room   meeting.Room
	err    error
	status meeting.RoomStatus
}

func newFakeRooms() *fakeRooms {
	return &fakeRooms{room: meeting.Room{SignalURL: "/ws", TokenKey: []byte(strings.Repeat("r", 32)),
		TURNSecret: []byte("turn-secret"), TURNURIs: []string{"turn:127.0.0.1:3478?transport=udp"}},
		status: meeting.RoomStatus{Ready: true, Online: 3}}
}

func (f *fakeRooms) set(room meeting.Room, err error, status meeting.RoomStatus) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.room, f.err, f.status = room, err, status
}

func (f *fakeRooms) Schedule(context.Context, meeting.Meeting) error { return nil }
func (f *fakeRooms) Remove(context.Context, string, string) error    { return nil }

func (f *fakeRooms) Room(context.Context, string) (meeting.Room, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.room, f.err
}

func (f *fakeRooms) Status(context.Context, string) meeting.RoomStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.status
}

func (h *harness) clock() time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.now
}

func (h *harness) advance(d time.Duration) {
	h.mu.Lock()
	h.now = h.now.Add(d)
	h.mu.Unlock()
}

// defaultRemoteAddr is the client address of the harness's requests.
const defaultRemoteAddr = "192.0.2.1:1234"

// from makes a request come from addr (host:port).
func from(addr string) func(*http.Request) {
	return func(r *http.Request) { r.RemoteAddr = addr }
}

// reply is a decoded envelope.
type reply struct {
	Status int
	Code   int             `json:"code"`
	Msg    string          `json:"msg"`
	Data   json.RawMessage `json:"data"`
	Raw    string
	Header http.Header
}

// do sends a request; body is sent as is when a string, else as JSON.
func (h *harness) do(method, path, token string, body any) reply {
	h.t.Helper()
	return h.doWith(method, path, token, body, nil)
}

// doWith is do with a change to the request before it is sent.
func (h *harness) doWith(method, path, token string, body any, change func(*http.Request)) reply {
	h.t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	default:
		js, err := json.Marshal(b)
		if err != nil {
			h.t.Fatal(err)
		}
		r = bytes.NewReader(js)
	}
	req := httptest.NewRequest(method, path, r)
	if token != "" {
		req.Header.Set("Authorization", token)
	}
	req.RemoteAddr = defaultRemoteAddr
	if change != nil {
		change(req)
	}
	w := httptest.NewRecorder()
	h.engine.ServeHTTP(w, req)
	out := reply{Status: w.Code, Raw: w.Body.String(), Header: w.Header()}
	if strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil {
			h.t.Fatalf("%s %s: reply is not JSON: %q", method, path, w.Body.String())
		}
		if out.Code != out.Status {
			h.t.Errorf("%s %s: envelope code %d differs from HTTP status %d", method, path, out.Code, out.Status)
		}
	}
	return out
}

// expect checks a reply's status and, when msg is not empty, that its
// message contains msg.
func (h *harness) expect(r reply, status int, msg string) {
	h.t.Helper()
	if r.Status != status || (msg != "" && !strings.Contains(r.Msg, msg)) {
		h.t.Errorf("got %d %q, want %d with %q (body %s)", r.Status, r.Msg, status, msg, r.Raw)
	}
}

func (h *harness) decode(r reply, v any) {
	h.t.Helper()
	if err := json.Unmarshal(r.Data, v); err != nil {
		h.t.Fatalf("data %s: %v", r.Data, err)
	}
}

// user registers a user and returns a token for it.
func (h *harness) user(name string) string {
	h.t.Helper()
	h.expect(h.do("POST", "/user/register", "", credentials{name, "password-" + name}), 200, "")
	r := h.do("POST", "/user/login", "", credentials{name, "password-" + name})
	h.expect(r, 200, "")
	var tok tokenReply
	h.decode(r, &tok)
	return tok.Token
}

func (h *harness) create(token string, body any) meetingReply {
	h.t.Helper()
	r := h.do("POST", "/auth/meeting/create", token, body)
	h.expect(r, 200, "")
	var m meetingReply
	h.decode(r, &m)
	return m
}

func ms(t time.Time) int64 { return t.UnixMilli() }
