package server

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
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
	"meeting.dev/meeting/internal/store"
)

func TestMain(m *testing.M) {
	gin.SetMode(gin.ReleaseMode)
	os.Exit(m.Run())
}

// harness is the API on a real database with a clock the test moves.
type harness struct {
	t      testing.TB
	engine *gin.Engine
	tokens *auth.Tokens
	store  *store.Store
	mu     sync.Mutex
	now    time.Time
}

func newHarness(t testing.TB, st *store.Store, wrap func(Store) Store) *harness {
	t.Helper()
	return newHarnessLimit(t, st, wrap, 100)
}

// newHarnessLimit allows loginBurst login attempts a minute per address and user.
func newHarnessLimit(t testing.TB, st *store.Store, wrap func(Store) Store, loginBurst int) *harness {
	t.Helper()
	h := &harness{t: t, store: st, now: time.Now().UTC()}
	var err error
	h.tokens, err = auth.NewTokens([]byte(strings.Repeat("k", 32)), time.Hour, h.clock)
	if err != nil {
		t.Fatal(err)
	}
	var s Store = st
	if wrap != nil {
		s = wrap(st)
	}
	h.engine, err = New(Config{Store: s, Tokens: h.tokens, Hasher: auth.Hasher{Cost: bcrypt.MinCost},
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Registry: prometheus.NewRegistry(), Now: h.clock,
		LoginLimiter: auth.NewLimiter(loginBurst, time.Minute, h.clock)})
	if err != nil {
		t.Fatal(err)
	}
	return h
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

// reply is a decoded envelope.
type reply struct {
	Status int
	Code   int             `json:"code"`
	Msg    string          `json:"msg"`
	Data   json.RawMessage `json:"data"`
	Raw    string
}

// do sends a request; body is sent as is when a string, else as JSON.
func (h *harness) do(method, path, token string, body any) reply {
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
	req.RemoteAddr = "192.0.2.1:1234"
	w := httptest.NewRecorder()
	h.engine.ServeHTTP(w, req)
	out := reply{Status: w.Code, Raw: w.Body.String()}
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
