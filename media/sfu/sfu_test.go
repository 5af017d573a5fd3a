package sfu

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/pion/webrtc/v3"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"

	"meeting.dev/meeting/media/client"
	"meeting.dev/meeting/media/signal"
	"meeting.dev/meeting/media/token"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var testKey = []byte("test key: 32 bytes of room secret")

// fixedKey gives every room testKey.
func fixedKey(string) ([]byte, error) { return testKey, nil }

type server struct {
	sfu *SFU
	url string
}

// startSFU runs an SFU on a random loopback UDP port and HTTP port.
func startSFU(t testing.TB, cfg Config) *server {
	t.Helper()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Keys == nil {
		cfg.Keys = fixedKey
	}
	if cfg.Logger == nil {
		level := slog.LevelWarn
		if os.Getenv("SFU_TEST_DEBUG") != "" {
			level = slog.LevelDebug
		}
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	}
	s, err := New(cfg, conn)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(func() {
		s.Close()
		srv.Close()
		_ = conn.Close()
	})
	return &server{sfu: s, url: "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws"}
}

func mint(t testing.TB, room, user string) string {
	t.Helper()
	tok, err := token.Mint(testKey, token.Claims{Room: room, User: user, Name: "Name " + user}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func join(t testing.TB, ctx context.Context, s *server, room, user string) *client.Client {
	t.Helper()
	c, err := client.Join(ctx, client.Options{URL: s.url, Token: mint(t, room, user)})
	if err != nil {
		t.Fatalf("join %s: %v", user, err)
	}
	t.Cleanup(c.Close)
	return c
}

func waitFor(t testing.TB, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	if err := client.Wait(ctx, cond); err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

// receiving reports whether c receives, from each of pubs, a track of each
// source with at least min packets (and a VP8 keyframe for video).
func receiving(c *client.Client, pubs []*client.Client, sources []string, min uint64) bool {
	got := map[string]bool{}
	for _, st := range c.Tracks() {
		if st.Removed || st.Ended || st.Packets < min {
			continue
		}
		if st.Info.Kind == "video" && st.Keyframes == 0 {
			continue
		}
		got[st.Info.Participant+"|"+st.Info.Source] = true
	}
	for _, p := range pubs {
		for _, s := range sources {
			if !got[p.ID()+"|"+s] {
				return false
			}
		}
	}
	return true
}

func others(all []*client.Client, me *client.Client) []*client.Client {
	var out []*client.Client
	for _, c := range all {
		if c != me {
			out = append(out, c)
		}
	}
	return out
}

func TestThreeParticipantsExchangeAudioAndVideo(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s := startSFU(t, Config{})
	var cs []*client.Client
	for i := range 3 {
		c := join(t, ctx, s, "room-a", fmt.Sprint("user", i))
		for _, src := range []string{signal.SourceAudio, signal.SourceCamera} {
			if _, err := c.Publish(ctx, src, client.MediaOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		cs = append(cs, c)
	}
	for _, c := range cs {
		waitFor(t, ctx, "media from the other two", func() bool {
			return receiving(c, others(cs, c), []string{signal.SourceAudio, signal.SourceCamera}, 20)
		})
		for _, st := range c.Tracks() {
			if st.Info.Participant == c.ID() {
				t.Errorf("%s receives its own track %s", c.ID(), st.Info.ID)
			}
			if len(st.Latencies) == 0 {
				t.Errorf("track %s: no timed packets", st.Info.ID)
			}
		}
		if n := len(c.Tracks()); n != 4 {
			t.Errorf("%s receives %d tracks, want 4", c.ID(), n)
		}
		if n := len(c.Participants()); n != 2 {
			t.Errorf("%s sees %d others, want 2", c.ID(), n)
		}
	}
	if got := s.sfu.Participants("room-a"); got != 3 {
		t.Fatalf("room holds %d participants, want 3", got)
	}
}

func TestScreenShareAddedAndRemovedMidCall(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s := startSFU(t, Config{})
	a := join(t, ctx, s, "room-s", "a")
	b := join(t, ctx, s, "room-s", "b")
	c := join(t, ctx, s, "room-s", "c")
	if _, err := a.Publish(ctx, signal.SourceCamera, client.MediaOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, r := range []*client.Client{b, c} {
		waitFor(t, ctx, "a's camera", func() bool { return receiving(r, []*client.Client{a}, []string{signal.SourceCamera}, 5) })
	}
	screen, err := a.Publish(ctx, signal.SourceScreen, client.MediaOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []*client.Client{b, c} {
		waitFor(t, ctx, "a's screen", func() bool {
			return receiving(r, []*client.Client{a}, []string{signal.SourceCamera, signal.SourceScreen}, 5)
		})
	}
	if err := screen.Unpublish(ctx); err != nil {
		t.Fatal(err)
	}
	screenID := a.ID() + "/" + screen.TrackID()
	for _, r := range []*client.Client{b, c} {
		waitFor(t, ctx, "the screen share to go", func() bool {
			_, announced := r.Announced()[screenID]
			for _, st := range r.Tracks() {
				if st.Info.ID == screenID {
					return !announced && st.Removed && st.Ended
				}
			}
			return false
		})
		// The camera still flows.
		var before uint64
		for _, st := range r.Tracks() {
			if st.Info.Source == signal.SourceCamera {
				before = st.Packets
			}
		}
		waitFor(t, ctx, "camera packets after the screen share ended", func() bool {
			for _, st := range r.Tracks() {
				if st.Info.Source == signal.SourceCamera && st.Packets > before+5 && !st.Ended {
					return true
				}
			}
			return false
		})
	}
}

func TestChatReachesEveryoneWithSender(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := startSFU(t, Config{})
	cs := []*client.Client{join(t, ctx, s, "room-c", "a"), join(t, ctx, s, "room-c", "b"), join(t, ctx, s, "room-c", "c")}
	for _, c := range cs {
		waitFor(t, ctx, "chat channel", func() bool {
			select {
			case <-c.ChatOpen():
			default:
				return false
			}
			return s.sfu.chatReady(c.ID())
		})
	}
	before := time.Now()
	if err := cs[1].Chat("hello from b"); err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		waitFor(t, ctx, "the chat message", func() bool { return len(c.Chats()) == 1 })
		m := c.Chats()[0]
		if m.From != cs[1].ID() || m.Name != "Name b" || m.Text != "hello from b" || m.At.Before(before.Add(-time.Second)) {
			t.Errorf("chat = %+v, want from %s (Name b)", m, cs[1].ID())
		}
	}

	// Invalid chat is refused with an error and relayed to no one.
	if err := cs[0].Chat(strings.Repeat("x", signal.MaxChatText+1)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "bad_chat error", func() bool {
		for _, e := range cs[0].Errors() {
			if e.Code == signal.CodeBadChat {
				return true
			}
		}
		return false
	})
	for _, c := range cs {
		if n := len(c.Chats()); n != 1 {
			t.Errorf("%d chat messages after an oversized one, want 1", n)
		}
	}

	// A flood is cut off: a burst of 10 passes, the rest is refused.
	for i := range 25 {
		if err := cs[2].Chat(fmt.Sprint("flood ", i)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, ctx, "the burst to arrive", func() bool { return len(cs[0].Chats()) >= 11 })
	waitFor(t, ctx, "flood refusals", func() bool {
		n := 0
		for _, e := range cs[2].Errors() {
			if e.Code == signal.CodeBadChat && strings.Contains(e.Message, "too many") {
				n++
			}
		}
		return n >= 10
	})
	if n := len(cs[0].Chats()) - 1; n > 15 {
		t.Fatalf("%d of a burst of 25 chat messages relayed, want about 10", n)
	}
}

func TestLeavingParticipantsTracksDisappear(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s := startSFU(t, Config{})
	a := join(t, ctx, s, "room-l", "a")
	b := join(t, ctx, s, "room-l", "b")
	c := join(t, ctx, s, "room-l", "c")
	for _, src := range []string{signal.SourceAudio, signal.SourceCamera} {
		if _, err := a.Publish(ctx, src, client.MediaOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.Publish(ctx, signal.SourceAudio, client.MediaOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "c receives a and b", func() bool {
		return receiving(c, []*client.Client{a}, []string{signal.SourceAudio, signal.SourceCamera}, 5) &&
			receiving(c, []*client.Client{b}, []string{signal.SourceAudio}, 5)
	})
	aID := a.ID()
	a.Close()
	for _, r := range []*client.Client{b, c} {
		waitFor(t, ctx, "a's tracks to disappear", func() bool {
			for _, p := range r.Participants() {
				if p.ID == aID {
					return false
				}
			}
			for _, tr := range r.Announced() {
				if tr.Participant == aID {
					return false
				}
			}
			for _, st := range r.Tracks() {
				if st.Info.Participant == aID && !(st.Removed && st.Ended) {
					return false
				}
			}
			return true
		})
	}
	waitFor(t, ctx, "b's audio still reaching c", func() bool { return receiving(c, []*client.Client{b}, []string{signal.SourceAudio}, 30) })
	if n := s.sfu.Participants("room-l"); n != 2 {
		t.Fatalf("%d participants, want 2", n)
	}
}

func TestTokensRefused(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	now := time.Now()
	s := startSFU(t, Config{Keys: func(room string) ([]byte, error) {
		if room != "the-room" {
			return nil, fmt.Errorf("room %q is not open", room)
		}
		return testKey, nil
	}})
	forged, err := token.Mint([]byte("some other key, also 32 bytes..."), token.Claims{Room: "the-room", User: "x"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	expired, _ := token.Mint(testKey, token.Claims{Room: "the-room", User: "x", IssuedAt: now.Add(-2 * time.Hour)}, time.Hour)
	wrongRoom, _ := token.Mint(testKey, token.Claims{Room: "another-room", User: "x"}, time.Hour)
	for _, tc := range []struct{ name, tok string }{
		{"forged", forged}, {"expired", expired}, {"wrong room", wrongRoom}, {"garbage", "abc.def.ghi"},
	} {
		for _, inQuery := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s query=%v", tc.name, inQuery), func(t *testing.T) {
				c, err := client.Join(ctx, client.Options{URL: s.url, Token: tc.tok, TokenInQuery: inQuery})
				if err == nil {
					c.Close()
					t.Fatal("join succeeded")
				}
				want := "unauthorized"
				if inQuery {
					want = "HTTP 401"
				}
				if !strings.Contains(err.Error(), want) {
					t.Fatalf("err = %v, want %q", err, want)
				}
			})
		}
	}
	if s.sfu.Rooms() != 0 {
		t.Fatalf("%d rooms after refused joins", s.sfu.Rooms())
	}
	ok, err := client.Join(ctx, client.Options{URL: s.url, Token: mint(t, "the-room", "y"), TokenInQuery: true})
	if err != nil {
		t.Fatalf("valid token in query: %v", err)
	}
	ok.Close()
}

func TestRoomLimitHoldsUnderConcurrentJoins(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const max, tries = 3, 12
	s := startSFU(t, Config{MaxParticipants: max})
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		joined  []*client.Client
		refused int
	)
	start := make(chan struct{})
	for i := range tries {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tok := mint(t, "room-full", fmt.Sprint("u", i))
			<-start
			c, err := client.Join(ctx, client.Options{URL: s.url, Token: tok})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				joined = append(joined, c)
			case strings.Contains(err.Error(), signal.CodeRoomFull):
				refused++
			default:
				t.Errorf("join: %v", err)
			}
		}()
	}
	close(start)
	wg.Wait()
	defer func() {
		for _, c := range joined {
			c.Close()
		}
	}()
	if len(joined) != max || refused != tries-max {
		t.Fatalf("%d joined and %d refused, want %d and %d", len(joined), refused, max, tries-max)
	}
	if n := s.sfu.Participants("room-full"); n != max {
		t.Fatalf("room holds %d, want %d", n, max)
	}
	// A place frees up when someone leaves.
	joined[0].Close()
	waitFor(t, ctx, "a free place", func() bool { return s.sfu.Participants("room-full") == max-1 })
	c := join(t, ctx, s, "room-full", "late")
	_ = c
}

func TestRoomRemovedWhenEmpty(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := startSFU(t, Config{})
	idle := goleak.IgnoreCurrent() // the SFU's own goroutines: UDP mux, HTTP server
	a := join(t, ctx, s, "room-e", "a")
	b := join(t, ctx, s, "room-e", "b")
	if _, err := a.Publish(ctx, signal.SourceCamera, client.MediaOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "b receives", func() bool { return receiving(b, []*client.Client{a}, []string{signal.SourceCamera}, 5) })
	if s.sfu.Rooms() != 1 {
		t.Fatalf("%d rooms, want 1", s.sfu.Rooms())
	}
	a.Close()
	b.Close()
	waitFor(t, ctx, "the room to close", func() bool { return s.sfu.Rooms() == 0 })
	// Nothing of the room (peer connections, forwarding, RTCP readers,
	// signalling) nor of the clients is left running.
	goleak.VerifyNone(t, idle)
}

func TestShutdownTellsClientsAndDrains(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := startSFU(t, Config{DrainTimeout: 20 * time.Second})
	a := join(t, ctx, s, "room-d", "a")
	b := join(t, ctx, s, "room-d", "b")
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.sfu.Shutdown(ctx)
	}()
	for _, c := range []*client.Client{a, b} {
		waitFor(t, ctx, "closing notice", func() bool { return c.Closing() != nil })
	}
	// New joins are refused while draining.
	if _, err := client.Join(ctx, client.Options{URL: s.url, Token: mint(t, "room-d", "late")}); err == nil {
		t.Fatal("join while draining succeeded")
	}
	select {
	case <-done:
		t.Fatal("shutdown returned while participants remain")
	case <-time.After(100 * time.Millisecond):
	}
	a.Close()
	b.Close()
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatal("shutdown did not return after everyone left")
	}
}

func TestShutdownForcesAfterGrace(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := startSFU(t, Config{DrainTimeout: 200 * time.Millisecond})
	a := join(t, ctx, s, "room-g", "a")
	s.sfu.Shutdown(ctx)
	select {
	case <-a.Done():
	case <-ctx.Done():
		t.Fatal("client still connected after the grace period")
	}
}

func TestOriginChecked(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := startSFU(t, Config{AllowedOrigins: []string{"https://meet.example.org"}})
	for _, tc := range []struct {
		origin string
		ok     bool
	}{
		{"https://evil.example", false},
		{"https://meet.example.org", true},
		{"", true}, // the client sends the URL's origin: the same origin
		{"https" + strings.TrimSuffix(strings.TrimPrefix(s.url, "ws"), "/ws"), false}, // the same host and port, another scheme
	} {
		c, err := client.Join(ctx, client.Options{URL: s.url, Token: mint(t, "room-o", "u"), Origin: tc.origin})
		if (err == nil) != tc.ok {
			t.Errorf("origin %q: err = %v, want ok=%v", tc.origin, err, tc.ok)
		}
		if err == nil {
			c.Close()
		} else if !strings.Contains(err.Error(), "HTTP 403") {
			t.Errorf("origin %q: err = %v, want HTTP 403", tc.origin, err)
		}
	}
}

// A request without Origin is refused (403) unless the SFU accepts
// non-browser clients without one, or any origin.
func TestMissingOriginRefusedByDefault(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, tc := range []struct {
		name string
		cfg  Config
		want int // HTTP status; 101 for the upgrade
	}{
		{"default", Config{}, http.StatusForbidden},
		{"allowed origins", Config{AllowedOrigins: []string{"https://meet.example.org"}}, http.StatusForbidden},
		{"allow no origin", Config{AllowNoOrigin: true}, http.StatusSwitchingProtocols},
		{"any origin", Config{AllowedOrigins: []string{"*"}}, http.StatusSwitchingProtocols},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startSFU(t, tc.cfg)
			for i, u := range []string{s.url, s.url + "?token=" + mint(t, "room-n", "u")} {
				way := []string{"join message", "token in the URL"}[i]
				ws, resp, err := websocket.DefaultDialer.DialContext(ctx, u, nil)
				if ws != nil {
					ws.Close()
				}
				if resp == nil {
					t.Fatalf("dial (%s): %v", way, err)
				}
				if resp.StatusCode != tc.want {
					t.Errorf("no Origin, %s: HTTP %d, want %d", way, resp.StatusCode, tc.want)
				}
			}
		})
	}
}

func TestBadMessagesAfterJoinAnsweredWithErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := startSFU(t, Config{})
	ws, _, err := websocket.DefaultDialer.DialContext(ctx, s.url+"?token="+mint(t, "room-b", "u"), originOf(s.url))
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	read := func() signal.Message { // skips the server's offers
		t.Helper()
		for {
			_, b, err := ws.ReadMessage()
			if err != nil {
				t.Fatal(err)
			}
			m, err := signal.Decode(b)
			if err != nil {
				t.Fatal(err)
			}
			if _, offer := m.(signal.Offer); !offer {
				return m
			}
		}
	}
	if _, ok := read().(signal.Joined); !ok {
		t.Fatal("no joined message")
	}
	for _, tc := range []struct{ in, code string }{
		{`{"type":"offer","sdp":"this is not SDP"}`, signal.CodeNegotiation},
		{`{"type":"answer","sdp":"v=0"}`, signal.CodeNegotiation},
		{`{"type":"joined","room":"x","you":{"id":"y"}}`, signal.CodeBadMessage},
		{`{"type":"warp"}`, signal.CodeUnknownType},
		{`]]`, signal.CodeBadMessage},
	} {
		if err := ws.WriteMessage(websocket.TextMessage, []byte(tc.in)); err != nil {
			t.Fatal(err)
		}
		if e, ok := read().(signal.Error); !ok || e.Code != tc.code {
			t.Fatalf("%s: got %#v, want error %s", tc.in, e, tc.code)
		}
	}
	if n := s.sfu.Participants("room-b"); n != 1 {
		t.Fatalf("%d participants after bad messages, want 1", n)
	}
}

func counterValue(t testing.TB, c interface{ Write(*dto.Metric) error }) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

func cameraOf(c *client.Client, pub *client.Client) (client.TrackStats, bool) {
	for _, st := range c.Tracks() {
		if st.Info.Participant == pub.ID() && st.Info.Source == signal.SourceCamera && !st.Ended {
			return st, true
		}
	}
	return client.TrackStats{}, false
}

func TestKeyframeRequestsReachPublisherThrottled(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := startSFU(t, Config{})
	a := join(t, ctx, s, "room-k", "a")
	b := join(t, ctx, s, "room-k", "b")
	cam, err := a.Publish(ctx, signal.SourceCamera, client.MediaOptions{KeyframeEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "b receives a keyframe", func() bool { return receiving(b, []*client.Client{a}, []string{signal.SourceCamera}, 5) })
	// The SFU asked for a keyframe when b subscribed: a sends keyframes only when asked.
	if cam.PLIs() == 0 || cam.Keyframes() < 2 {
		t.Fatalf("publisher got %d PLIs and sent %d keyframes; want a requested keyframe", cam.PLIs(), cam.Keyframes())
	}
	st, _ := cameraOf(b, a)
	in0 := counterValue(t, s.sfu.m.plisIn)
	before := cam.PLIs()
	for range 20 {
		if err := b.RequestKeyframe(st.Info.ID); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, ctx, "the requests to arrive", func() bool { return counterValue(t, s.sfu.m.plisIn) >= in0+20 })
	waitFor(t, ctx, "a forwarded request", func() bool { return cam.PLIs() > before })
	time.Sleep(3 * keyframeInterval)
	// 20 requests in a burst: one goes at once, the rest merge into one
	// sent at the end of the interval.
	if got := cam.PLIs() - before; got > 3 {
		t.Fatalf("publisher got %d PLIs for a burst of 20 requests, want at most 3", got)
	}
	waitFor(t, ctx, "another keyframe at b", func() bool {
		now, _ := cameraOf(b, a)
		return now.Keyframes > st.Keyframes
	})
}

func TestNACKAnsweredFromCache(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := startSFU(t, Config{})
	a := join(t, ctx, s, "room-n", "a")
	b := join(t, ctx, s, "room-n", "b")
	if _, err := a.Publish(ctx, signal.SourceCamera, client.MediaOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "b receives", func() bool { return receiving(b, []*client.Client{a}, []string{signal.SourceCamera}, 10) })
	st, _ := cameraOf(b, a)
	r0 := counterValue(t, s.sfu.m.retransmits)
	if err := b.SendNACK(st.Info.ID, st.LastSeq-1, st.LastSeq); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "retransmissions", func() bool { return counterValue(t, s.sfu.m.retransmits) >= r0+2 })
}

func TestPublicIPAnnounced(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := startSFU(t, Config{PublicIPs: []string{"192.0.2.10"}})
	ws, _, err := websocket.DefaultDialer.DialContext(ctx, s.url+"?token="+mint(t, "room-p", "u"), originOf(s.url))
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	// An offer from a pion peer that never applies the answer: no packet
	// goes to the announced (documentation-range) address.
	pc, err := webrtc.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if _, err := pc.CreateDataChannel("chat", nil); err != nil {
		t.Fatal(err)
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := signal.Encode(signal.Offer{SDP: offer.SDP})
	if err := ws.WriteMessage(websocket.TextMessage, b); err != nil {
		t.Fatal(err)
	}
	for {
		_, raw, err := ws.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		m, err := signal.Decode(raw)
		if err != nil {
			t.Fatal(err)
		}
		a, ok := m.(signal.Answer)
		if !ok {
			continue
		}
		if !strings.Contains(a.SDP, " 192.0.2.10 ") || strings.Contains(a.SDP, " 127.0.0.1 ") {
			t.Fatalf("answer does not announce only the public IP:\n%s", a.SDP)
		}
		return
	}
}

// mintIssued mints a join token issued at iat.
func mintIssued(t testing.TB, room, user string, iat time.Time) string {
	t.Helper()
	tok, err := token.Mint(testKey, token.Claims{Room: room, User: user, Name: "Name " + user, IssuedAt: iat}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}
