package sync_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"

	rtcv1alpha1 "meeting.dev/meeting/api/v1alpha1"
	"meeting.dev/meeting/internal/auth"
	"meeting.dev/meeting/internal/meeting"
	"meeting.dev/meeting/internal/schedule"
	"meeting.dev/meeting/internal/server"
	apisync "meeting.dev/meeting/internal/sync"
)

var policy = schedule.Policy{LeadTime: time.Minute, Grace: time.Minute}

// setStatus writes a Meeting's status as the operator would.
func setStatus(t *testing.T, ns, name string, f func(*rtcv1alpha1.MeetingStatus)) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		m, err := getMeeting(ns, name)
		if err != nil {
			return err
		}
		f(&m.Status)
		return shared.client.Status().Update(bg, m)
	})
	if err != nil {
		t.Fatalf("status of %s: %v", name, err)
	}
}

func runningStatus(phase rtcv1alpha1.Phase, signal string) func(*rtcv1alpha1.MeetingStatus) {
	return func(st *rtcv1alpha1.MeetingStatus) {
		st.Phase, st.SignalURL = phase, signal
		st.TURNURIs = []string{"turn:127.0.0.1:3478?transport=udp"}
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: rtcv1alpha1.ConditionReady,
			Status: metav1.ConditionTrue, Reason: "Available", Message: "up"})
	}
}

func phaseOnly(phase rtcv1alpha1.Phase) func(*rtcv1alpha1.MeetingStatus) {
	return func(st *rtcv1alpha1.MeetingStatus) {
		st.Phase, st.SignalURL, st.TURNURIs = phase, "", nil
		meta.RemoveStatusCondition(&st.Conditions, rtcv1alpha1.ConditionReady)
	}
}

func roomSecret(ns, meetingName string) *corev1.Secret {
	return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: rtcv1alpha1.MediaSecretName(meetingName)},
		Data: map[string][]byte{rtcv1alpha1.SecretTokenKey: []byte(strings.Repeat("k", 32)), rtcv1alpha1.SecretTURNKey: []byte("turn-secret")}}
}

// syncedRoom is a REST meeting that the sync has applied to the cluster,
// and the Rooms of a running sync.
func syncedRoom(t *testing.T, w *world, begin time.Time) (*running, *apisync.Rooms, meeting.Meeting) {
	t.Helper()
	r := startSync(t, w, w.st, syncOpts{})
	m := w.restCreate(t, "room", begin)
	eventually(t, "Meeting applied", func() error { _, err := getMeeting(w.ns, apisync.ResourceName(m.Identity)); return err })
	rooms, err := apisync.NewRooms(apisync.RoomsConfig{Namespace: w.ns, Cache: r.mgr.GetClient(), Secrets: r.mgr.GetAPIReader(), Policy: policy})
	if err != nil {
		t.Fatal(err)
	}
	return r, rooms, m
}

// The cluster's Rooms: the phase of the Meeting is the meeting's; a join
// waits (503 with a retry time) while Scheduled or Starting, reads the
// room Secret once Running, and is refused (410) once over.
func TestRoomsFollowTheMeeting(t *testing.T) {
	w := newWorld(t)
	begin := time.Now().Add(10 * time.Minute)
	_, rooms, m := syncedRoom(t, w, begin)
	name := apisync.ResourceName(m.Identity)

	notReady := func(minWait, maxWait time.Duration, reason string) error {
		_, err := rooms.Room(bg, m.Identity)
		var nr *meeting.NotReadyError
		if !errors.As(err, &nr) || !errors.Is(err, meeting.ErrMediaNotReady) {
			return fmt.Errorf("Room: %v, want a NotReadyError", err)
		}
		if nr.RetryAfter < minWait || nr.RetryAfter > maxWait || !strings.Contains(nr.Reason, reason) {
			return fmt.Errorf("retry after %s (%s), want %s..%s and %q", nr.RetryAfter, nr.Reason, minWait, maxWait, reason)
		}
		return nil
	}
	// No status yet: the media is starting, as far as the API knows.
	eventually(t, "no status", func() error { return notReady(3*time.Second, 3*time.Second, "starting") })
	if _, err := rooms.Room(bg, "no-such-room"); !errors.Is(err, meeting.ErrMediaNotReady) {
		t.Errorf("unknown room: %v", err)
	}

	setStatus(t, w.ns, name, phaseOnly(rtcv1alpha1.PhaseScheduled))
	// beginAt - lead - now: about 9 minutes.
	eventually(t, "Scheduled", func() error { return notReady(8*time.Minute, 9*time.Minute, "not started") })
	eventually(t, "phase shown", func() error {
		if st := rooms.Status(bg, m.Identity); st.Phase != meeting.Scheduled || st.Ready {
			return fmt.Errorf("status %+v", st)
		}
		return nil
	})

	setStatus(t, w.ns, name, phaseOnly(rtcv1alpha1.PhaseStarting))
	eventually(t, "Starting", func() error { return notReady(3*time.Second, 3*time.Second, "starting") })

	setStatus(t, w.ns, name, runningStatus(rtcv1alpha1.PhaseRunning, "ws://127.0.0.1:1/ws"))
	eventually(t, "Running without its Secret", func() error { return notReady(3*time.Second, 3*time.Second, "Secret") })
	if err := shared.client.Create(bg, roomSecret(w.ns, name)); err != nil {
		t.Fatal(err)
	}
	room, err := rooms.Room(bg, m.Identity)
	if err != nil {
		t.Fatalf("Room while Running: %v", err)
	}
	if room.SignalURL != "/rooms/"+m.Identity+"/ws" || string(room.TokenKey) != strings.Repeat("k", 32) ||
		string(room.TURNSecret) != "turn-secret" || len(room.TURNURIs) != 1 {
		t.Errorf("room %+v", room)
	}
	if st := rooms.Status(bg, m.Identity); st.Phase != meeting.Running || !st.Ready {
		t.Errorf("status %+v, want Running and ready", st)
	}

	setStatus(t, w.ns, name, phaseOnly(rtcv1alpha1.PhaseEnded))
	eventually(t, "Ended", func() error {
		if _, err := rooms.Room(bg, m.Identity); !errors.Is(err, meeting.ErrEnded) {
			return fmt.Errorf("Room: %v, want ErrEnded", err)
		}
		return nil
	})
}

// Ending admits joins during the grace after endAt, and refuses them after.
func TestRoomsEndingPastGrace(t *testing.T) {
	w := newWorld(t)
	_, rooms, m := syncedRoom(t, w, time.Now().Add(-62*time.Minute)) // ended 2 minutes ago; grace 1m
	name := apisync.ResourceName(m.Identity)
	if err := shared.client.Create(bg, roomSecret(w.ns, name)); err != nil {
		t.Fatal(err)
	}
	setStatus(t, w.ns, name, runningStatus(rtcv1alpha1.PhaseEnding, "ws://127.0.0.1:1/ws"))
	eventually(t, "Ending past its grace", func() error {
		if _, err := rooms.Room(bg, m.Identity); !errors.Is(err, meeting.ErrEnded) {
			return fmt.Errorf("Room: %v, want ErrEnded", err)
		}
		return nil
	})
}

// restAPI is the REST API over the world's store with the cluster's Rooms
// and the proxy, as `meeting api` mounts them.
func restAPI(t *testing.T, w *world, rooms meeting.Rooms, proxy http.Handler) (*httptest.Server, string) {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	svc, err := meeting.New(meeting.Config{Store: w.st, Rooms: rooms, Policy: policy, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := auth.NewTokens([]byte(strings.Repeat("j", 32)), time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := server.Config{Accounts: w.st, Meetings: svc, Tokens: tokens, Hasher: auth.Hasher{Cost: 4}, Log: log, Registry: prometheus.NewRegistry()}
	if proxy != nil {
		cfg.Handlers = map[string]http.Handler{apisync.SignalPathPrefix + ":identity/ws": proxy}
	}
	h, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	tok, _, err := tokens.Issue(auth.Identity{UserID: w.alice.ID, Username: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	return srv, tok
}

type envelope struct {
	Code int             `json:"code"`
	Msg  string          `json:"msg"`
	Data json.RawMessage `json:"data"`
}

func call(t *testing.T, method, u, tok, body string) (*http.Response, envelope) {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e envelope
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatalf("%s %s: %s: %v", method, u, b, err)
	}
	return resp, e
}

// Through REST: get shows the cluster's phase; the join answers 503 with
// Retry-After while the Meeting is Starting, the join's token and the
// proxied signal URL once Running, and 410 once Ended.
func TestJoinInACluster(t *testing.T) {
	w := newWorld(t)
	_, rooms, m := syncedRoom(t, w, time.Now().Add(-time.Minute))
	name := apisync.ResourceName(m.Identity)
	srv, tok := restAPI(t, w, rooms, nil)
	join := func() (*http.Response, envelope) {
		return call(t, http.MethodPost, srv.URL+"/auth/meeting/join", tok, `{"identity":"`+m.Identity+`"}`)
	}

	setStatus(t, w.ns, name, phaseOnly(rtcv1alpha1.PhaseStarting))
	eventually(t, "503 while Starting", func() error {
		resp, e := join()
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "3" || e.Code != 503 {
			return fmt.Errorf("join: %d Retry-After %q %s", resp.StatusCode, resp.Header.Get("Retry-After"), e.Msg)
		}
		return nil
	})

	setStatus(t, w.ns, name, phaseOnly(rtcv1alpha1.PhaseFailed))
	eventually(t, "the cluster's phase in get", func() error {
		_, e := call(t, http.MethodGet, srv.URL+"/auth/meeting/get?identity="+m.Identity, tok, "")
		if !strings.Contains(string(e.Data), `"phase":"Failed"`) {
			return fmt.Errorf("get: %s", e.Data)
		}
		return nil
	})

	if err := shared.client.Create(bg, roomSecret(w.ns, name)); err != nil {
		t.Fatal(err)
	}
	setStatus(t, w.ns, name, runningStatus(rtcv1alpha1.PhaseRunning, "ws://127.0.0.1:1/ws"))
	eventually(t, "join while Running", func() error {
		resp, e := join()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("join: %d %s", resp.StatusCode, e.Msg)
		}
		var d struct {
			SignalURL  string `json:"signal_url"`
			Token      string `json:"token"`
			ICEServers []struct {
				URLs []string `json:"urls"`
			} `json:"ice_servers"`
		}
		if err := json.Unmarshal(e.Data, &d); err != nil {
			return err
		}
		want := "ws://" + strings.TrimPrefix(srv.URL, "http://") + "/rooms/" + m.Identity + "/ws"
		if d.SignalURL != want || d.Token == "" || len(d.ICEServers) != 1 || d.ICEServers[0].URLs[0] != "turn:127.0.0.1:3478?transport=udp" {
			return fmt.Errorf("join data %s, want signal_url %s", e.Data, want)
		}
		return nil
	})
	_, e := call(t, http.MethodGet, srv.URL+"/auth/meeting/list", tok, "")
	if !strings.Contains(string(e.Data), `"phase":"Running"`) {
		t.Errorf("list: %s", e.Data)
	}

	setStatus(t, w.ns, name, phaseOnly(rtcv1alpha1.PhaseEnded))
	eventually(t, "410 once Ended", func() error {
		resp, e := join()
		if resp.StatusCode != http.StatusGone {
			return fmt.Errorf("join: %d %s", resp.StatusCode, e.Msg)
		}
		return nil
	})
}

// echoSFU is a stand-in for a room's SFU signalling endpoint: it accepts
// only its own origin (as meeting sfu does by default), echoes messages and
// counts open connections.
type echoSFU struct {
	srv   *httptest.Server
	open  atomic.Int32
	conns chan *websocket.Conn
}

func newEchoSFU(t *testing.T) *echoSFU {
	t.Helper()
	e := &echoSFU{conns: make(chan *websocket.Conn, 16)}
	up := websocket.Upgrader{CheckOrigin: func(r *http.Request) bool {
		return r.Header.Get("Origin") == "http://"+r.Host
	}}
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/ws" {
			http.NotFound(w, r)
			return
		}
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		e.open.Add(1)
		defer e.open.Add(-1)
		select {
		case e.conns <- c:
		default: // nobody will ask for it
		}
		for {
			mt, b, err := c.ReadMessage()
			if err != nil {
				c.Close()
				return
			}
			if err := c.WriteMessage(mt, b); err != nil {
				c.Close()
				return
			}
		}
	}))
	t.Cleanup(e.srv.Close)
	return e
}

func (e *echoSFU) signalURL() string {
	return "ws://" + strings.TrimPrefix(e.srv.URL, "http://") + "/ws"
}

func dialWS(u, origin string) (*websocket.Conn, *http.Response, error) {
	h := http.Header{}
	if origin != "" {
		h.Set("Origin", origin)
	}
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	return d.Dial(u, h)
}

// The signalling proxy: the API's own origin and the allowed ones only
// (403 otherwise), 404 for an unknown room, 503 with Retry-After while the
// room is not running and when the cap is reached; messages flow both
// ways, and either side closing closes the other; shutting the API down
// closes its proxied connections.
func TestSignalProxy(t *testing.T) {
	w := newWorld(t)
	r, rooms, m := syncedRoom(t, w, time.Now().Add(-time.Minute))
	name := apisync.ResourceName(m.Identity)
	sfu := newEchoSFU(t)
	self, err := server.RequestURLFunc(nil)
	if err != nil {
		t.Fatal(err)
	}
	pctx, shutdown := context.WithCancel(bg)
	defer shutdown()
	reg := prometheus.NewRegistry()
	proxy, err := apisync.NewProxy(pctx, apisync.ProxyConfig{Namespace: w.ns, Cache: r.mgr.GetClient(), SelfURL: self,
		AllowedOrigins: []string{"https://meet.example.org"}, MaxConns: 2, Registerer: reg, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	srv, _ := restAPI(t, w, rooms, proxy)
	base := "ws://" + strings.TrimPrefix(srv.URL, "http://")
	wsURL := base + "/rooms/" + m.Identity + "/ws"
	status := func(u, origin string) (int, string) {
		c, resp, err := dialWS(u, origin)
		if err == nil {
			c.Close()
			return http.StatusSwitchingProtocols, ""
		}
		if resp == nil {
			t.Fatalf("dial %s: %v", u, err)
		}
		return resp.StatusCode, resp.Header.Get("Retry-After")
	}

	// Not running yet.
	setStatus(t, w.ns, name, phaseOnly(rtcv1alpha1.PhaseStarting))
	eventually(t, "503 while Starting", func() error {
		if code, ra := status(wsURL, srv.URL); code != http.StatusServiceUnavailable || ra == "" {
			return fmt.Errorf("got %d Retry-After %q", code, ra)
		}
		return nil
	})
	setStatus(t, w.ns, name, runningStatus(rtcv1alpha1.PhaseRunning, sfu.signalURL()))
	eventually(t, "proxied once Running", func() error {
		if code, _ := status(wsURL, srv.URL); code != http.StatusSwitchingProtocols {
			return fmt.Errorf("got %d", code)
		}
		return nil
	})
	for _, c := range []struct {
		name, url, origin string
		want              int
	}{
		{"allowed origin", wsURL, "https://meet.example.org", http.StatusSwitchingProtocols},
		{"other origin", wsURL, "https://evil.example", http.StatusForbidden},
		{"other port", wsURL, "http://127.0.0.1:1", http.StatusForbidden},
		{"no origin", wsURL, "", http.StatusForbidden},
		{"unknown room", base + "/rooms/no-such-room/ws", srv.URL, http.StatusNotFound},
	} {
		if code, _ := status(c.url, c.origin); code != c.want {
			t.Errorf("%s: %d, want %d", c.name, code, c.want)
		}
	}
	eventually(t, "closed test connections gone", func() error {
		if n := sfu.open.Load(); n != 0 {
			return fmt.Errorf("%d open at the SFU", n)
		}
		if n := gather(t, reg, "meeting_api_signal_proxy_connections"); n != 0 {
			return fmt.Errorf("%v proxied connections counted", n)
		}
		return nil
	})
	for len(sfu.conns) > 0 {
		<-sfu.conns
	}

	// Messages both ways; the cap of 2.
	a, _, err := dialWS(wsURL, srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, _, err := dialWS(wsURL, srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := a.WriteMessage(websocket.TextMessage, []byte(`{"type":"join"}`)); err != nil {
		t.Fatal(err)
	}
	_ = a.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, got, err := a.ReadMessage(); err != nil || string(got) != `{"type":"join"}` {
		t.Fatalf("echo: %q %v", got, err)
	}
	if code, ra := status(wsURL, srv.URL); code != http.StatusServiceUnavailable || ra == "" {
		t.Errorf("over the cap: %d Retry-After %q, want 503", code, ra)
	}
	sfuA, sfuB := <-sfu.conns, <-sfu.conns

	// The client closes: the SFU's side ends.
	a.Close()
	eventually(t, "the SFU sees the client go", func() error {
		if n := sfu.open.Load(); n != 1 {
			return fmt.Errorf("%d open at the SFU", n)
		}
		return nil
	})
	// The SFU closes: the client's side ends.
	_ = sfuA.Close()
	_ = sfuB.Close()
	_ = b.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, _, err := b.ReadMessage(); err == nil || isTimeout(err) {
		t.Errorf("client read after the SFU closed: %v, want the connection closed", err)
	}

	// Shutdown closes what is proxied.
	c, _, err := dialWS(wsURL, srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	<-sfu.conns
	shutdown()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, _, err := c.ReadMessage(); err == nil || isTimeout(err) {
		t.Errorf("client read after shutdown: %v, want the connection closed", err)
	}
	if got := gather(t, reg, "meeting_api_signal_proxy_refused_total", "reason", "origin"); got != 3 {
		t.Errorf("origin refusals counted %v, want 3", got)
	}
}

func isTimeout(err error) bool {
	var ne interface{ Timeout() bool }
	return errors.As(err, &ne) && ne.Timeout()
}

func gather(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	r := &running{metrics: reg}
	return r.counter(t, name, labels...)
}
