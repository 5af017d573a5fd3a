package sfu

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/pion/ice/v2"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v3"

	"meeting.dev/meeting/media/client"
	"meeting.dev/meeting/media/signal"
)

// rawConn is a signalling connection driven by hand.
type rawConn struct {
	t  *testing.T
	ws *websocket.Conn
}

// originOf is the Origin header a browser on the page of the signalling
// URL u would send: u's scheme as http(s), host and port.
func originOf(u string) http.Header {
	o, err := client.OriginOf(u)
	if err != nil {
		panic(err)
	}
	return http.Header{"Origin": {o}}
}

func dialRaw(t *testing.T, ctx context.Context, url string) *rawConn {
	t.Helper()
	ws, _, err := websocket.DefaultDialer.DialContext(ctx, url, originOf(url))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ws.Close() })
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	return &rawConn{t: t, ws: ws}
}

func (c *rawConn) write(typ int, b string) {
	c.t.Helper()
	if err := c.ws.WriteMessage(typ, []byte(b)); err != nil {
		c.t.Fatal(err)
	}
}

func (c *rawConn) send(m signal.Message) {
	c.t.Helper()
	b, err := signal.Encode(m)
	if err != nil {
		c.t.Fatal(err)
	}
	c.write(websocket.TextMessage, string(b))
}

// read returns the next message other than the server's offers; nil when
// the server closed the connection.
func (c *rawConn) read() signal.Message {
	c.t.Helper()
	for {
		_, b, err := c.ws.ReadMessage()
		if websocket.IsCloseError(err, websocket.CloseNormalClosure) {
			return nil
		}
		if err != nil {
			c.t.Fatal(err)
		}
		m, err := signal.Decode(b)
		if err != nil {
			c.t.Fatal(err)
		}
		if _, offer := m.(signal.Offer); !offer {
			return m
		}
	}
}

func (c *rawConn) wantError(what, code string) {
	c.t.Helper()
	if e, ok := c.read().(signal.Error); !ok || e.Code != code {
		c.t.Fatalf("%s: got %#v, want error %s", what, e, code)
	}
}

func TestBeforeJoinOnlyJoinIsAccepted(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := startSFU(t, Config{})
	c := dialRaw(t, ctx, s.url)
	for _, tc := range []struct {
		typ int
		in  string
	}{
		{websocket.TextMessage, `]]`},
		{websocket.TextMessage, `{"type":"warp"}`},
		{websocket.BinaryMessage, `{"type":"join"}`},
		{websocket.TextMessage, `{"type":"offer","sdp":"v=0"}`},
		{websocket.TextMessage, `{"type":"offer"}`},
		{websocket.TextMessage, `{"type":"leave"}`},
	} {
		c.write(tc.typ, tc.in)
		c.wantError(tc.in, signal.CodeNotJoined) // and the connection stays open
	}
	for _, join := range []string{`{"type":"join"}`, `{"type":"join","token":""}`, `{"type":"join","token":5}`, `{"type":"join","token":"abc.def.ghi"}`} {
		t.Run(join, func(t *testing.T) {
			c := dialRaw(t, ctx, s.url)
			c.write(websocket.TextMessage, join)
			c.wantError(join, signal.CodeUnauthorized)
			if m := c.read(); m != nil {
				t.Fatalf("after unauthorized: %#v, want the connection closed", m)
			}
		})
	}
	// The connection that only sent bad messages still joins.
	c.send(signal.Join{Token: mint(t, "room-j", "u")})
	if _, ok := c.read().(signal.Joined); !ok {
		t.Fatal("no joined after the bad messages")
	}
}

func TestRefusalsInOrderOriginDrainingToken(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := startSFU(t, Config{AllowedOrigins: []string{"https://meet.example.org"}})
	status := func(origin string) int {
		t.Helper()
		h := http.Header{}
		if origin != "" {
			h.Set("Origin", origin)
		}
		_, resp, err := websocket.DefaultDialer.DialContext(ctx, s.url+"?token=forged", h)
		if err == nil || resp == nil {
			t.Fatalf("dial: %v, want an HTTP refusal", err)
		}
		return resp.StatusCode
	}
	if got := status("https://evil.example"); got != http.StatusForbidden {
		t.Fatalf("bad origin and bad token: %d, want 403", got)
	}
	if got := status("https://meet.example.org"); got != http.StatusUnauthorized {
		t.Fatalf("good origin, bad token: %d, want 401", got)
	}
	s.sfu.Shutdown(ctx)
	if got := status("https://evil.example"); got != http.StatusForbidden {
		t.Fatalf("draining, bad origin: %d, want 403", got)
	}
	if got := status(originOf(s.url).Get("Origin")); got != http.StatusServiceUnavailable {
		t.Fatalf("draining, bad token: %d, want 503", got)
	}
}

func TestSameOrigin(t *testing.T) {
	for _, tc := range []struct {
		origin, host string
		tls          bool
		proto        string
		want         bool
	}{
		{"http://127.0.0.1:7880", "127.0.0.1:7880", false, "", true},
		{"http://127.0.0.1:7881", "127.0.0.1:7880", false, "", false}, // another port
		{"http://127.0.0.1", "127.0.0.1:7880", false, "", false},
		{"https://meet.example.org", "meet.example.org", true, "", true},
		{"https://meet.example.org", "meet.example.org:443", true, "", true},
		{"https://MEET.example.org", "meet.example.org", true, "", true},
		{"http://meet.example.org", "meet.example.org", true, "", false},       // scheme differs (TLS)
		{"http://meet.example.org", "meet.example.org", false, "https", false}, // scheme differs (proxy)
		{"https://meet.example.org", "meet.example.org", false, "https", true},
		{"https://meet.example.org", "meet.example.org", false, "", false}, // plain HTTP, no proxy header: http
		{"http://meet.example.org", "meet.example.org", false, "", true},
		{"http://meet.example.org", "meet.example.org", false, "http", true},
		{"https://meet.example.org", "meet.example.org", false, "gopher", false},
		{"http://meet.example.org:443", "meet.example.org", false, "", false},
		{"https://other.example.org", "meet.example.org", true, "", false},
		{"null", "meet.example.org", false, "", false},
		{"file://meet.example.org", "meet.example.org", false, "", false},
		{"http://[::1]:8080", "[::1]:8080", false, "", true},
	} {
		r := httptest.NewRequest(http.MethodGet, "/ws", nil)
		r.Host = tc.host
		if tc.tls {
			r.TLS = &tls.ConnectionState{}
		}
		if tc.proto != "" {
			r.Header.Set("X-Forwarded-Proto", tc.proto)
		}
		if got := sameOrigin(tc.origin, r); got != tc.want {
			t.Errorf("origin %s, host %s, tls %v, proto %q: %v, want %v", tc.origin, tc.host, tc.tls, tc.proto, got, tc.want)
		}
	}
}

func TestSendingTracks(t *testing.T) {
	sec := func(kind, port, dir string) string {
		s := fmt.Sprintf("m=%s %s UDP/TLS/RTP/SAVPF 96\r\na=mid:x\r\n", kind, port)
		if dir != "" {
			s += "a=" + dir + "\r\n"
		}
		return s
	}
	head := "v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n"
	for _, tc := range []struct {
		sdp  string
		want int
	}{
		{head, 0},
		{head + sec("audio", "9", "sendonly") + sec("video", "9", "sendonly"), 2},
		{head + sec("audio", "9", "") + sec("video", "9", "sendrecv"), 2},
		{head + sec("audio", "9", "recvonly") + sec("video", "9", "inactive"), 0},
		{head + sec("video", "0", "sendonly"), 0},
		{head + "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n" + sec("video", "9", "sendonly"), 1},
		{head + strings.Repeat(sec("video", "9", "sendonly"), 5), 5},
	} {
		var d sdp.SessionDescription
		if err := d.UnmarshalString(tc.sdp); err != nil {
			t.Fatalf("%v:\n%s", err, tc.sdp)
		}
		if got := sendingTracks(&d); got != tc.want {
			t.Errorf("sendingTracks = %d, want %d:\n%s", got, tc.want, tc.sdp)
		}
	}
}

func TestHistoryKeepsTheLastMessages(t *testing.T) {
	var h [][]byte
	for i := range ChatHistory + 5 {
		h = appendHistory(h, []byte(fmt.Sprint(i)))
	}
	if len(h) != ChatHistory || string(h[0]) != "5" || string(h[len(h)-1]) != fmt.Sprint(ChatHistory+4) {
		t.Fatalf("history of %d from %s to %s", len(h), h[0], h[len(h)-1])
	}
}

func TestUnpublishAnnouncedBeforeItsOffer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s := startSFU(t, Config{})
	a := join(t, ctx, s, "room-u", "a")
	b := join(t, ctx, s, "room-u", "b")
	screen, err := a.Publish(ctx, signal.SourceScreen, client.MediaOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "b receives the screen", func() bool { return receiving(b, []*client.Client{a}, []string{signal.SourceScreen}, 5) })
	types := b.MessageTypes()
	pub := slices.Index(types, signal.TypeTrackPublished)
	if pub < 0 || !slices.Contains(types[pub:], signal.TypeOffer) {
		t.Fatalf("messages %v: want track_published, then an offer", types)
	}
	before := len(types)
	if err := screen.Unpublish(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "the offer removing the screen", func() bool {
		return slices.Contains(b.MessageTypes()[before:], signal.TypeOffer)
	})
	after := b.MessageTypes()[before:]
	if after[0] != signal.TypeTrackUnpublished {
		t.Fatalf("after the unpublish b got %v, want track_unpublished first, then offer", after)
	}
}

func TestChatHistoryForLateJoiners(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := startSFU(t, Config{})
	a := join(t, ctx, s, "room-h", "a")
	waitFor(t, ctx, "a's chat channel", func() bool { return s.sfu.chatReady(a.ID()) })
	for i := range 3 {
		if err := a.Chat(fmt.Sprint("before ", i)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, ctx, "a's own messages", func() bool { return len(a.Chats()) == 3 })
	b := join(t, ctx, s, "room-h", "b")
	waitFor(t, ctx, "b's chat channel", func() bool { return s.sfu.chatReady(b.ID()) })
	if err := a.Chat("after"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "history and the new message at b", func() bool { return len(b.Chats()) == 4 })
	for i, m := range b.Chats() {
		want := fmt.Sprint("before ", i)
		if i == 3 {
			want = "after"
		}
		if m.Text != want || m.From != a.ID() {
			t.Fatalf("b's chat %d = %+v, want %q from a", i, m, want)
		}
		if m.At.Nanosecond()%int(time.Millisecond) != 0 {
			t.Fatalf("chat at %s has more than millisecond precision", m.At.Format(time.RFC3339Nano))
		}
	}
	if n := len(a.Chats()); n != 4 {
		t.Fatalf("a got %d messages, want its own 4 once each", n)
	}
}

func TestFifthTrackRefusedBeforeAnswer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s := startSFU(t, Config{})
	a := join(t, ctx, s, "room-5", "a")
	b := join(t, ctx, s, "room-5", "b")
	for range MaxTracksPerParticipant {
		if _, err := a.Publish(ctx, signal.SourceAudio, client.MediaOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	answers := strings.Count(strings.Join(a.MessageTypes(), " "), signal.TypeAnswer)
	_, err := a.Publish(ctx, signal.SourceAudio, client.MediaOptions{})
	if err == nil || !strings.Contains(err.Error(), signal.CodeNegotiation) {
		t.Fatalf("fifth track: %v, want negotiation_failed", err)
	}
	if n := strings.Count(strings.Join(a.MessageTypes(), " "), signal.TypeAnswer); n != answers {
		t.Fatalf("the refused offer was answered")
	}
	waitFor(t, ctx, "b receives the four", func() bool {
		n := 0
		for _, st := range b.Tracks() {
			if st.Packets > 5 && !st.Ended {
				n++
			}
		}
		return n == MaxTracksPerParticipant
	})
	if n := len(b.Announced()); n != MaxTracksPerParticipant {
		t.Fatalf("b was announced %d tracks, want %d", n, MaxTracksPerParticipant)
	}
}

func TestDataChannelOnPublishConnectionClosed(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := startSFU(t, Config{})
	c := dialRaw(t, ctx, s.url+"?token="+mint(t, "room-dc", "u"))
	if _, ok := c.read().(signal.Joined); !ok {
		t.Fatal("no joined")
	}
	se := webrtc.SettingEngine{}
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetIncludeLoopbackCandidate(true)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	pc, err := webrtc.NewAPI(webrtc.WithSettingEngine(se)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = pc.Close() }()
	dc, err := pc.CreateDataChannel("mine", nil)
	if err != nil {
		t.Fatal(err)
	}
	closed := make(chan struct{})
	dc.OnClose(func() { close(closed) })
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	<-gathered
	c.send(signal.Offer{SDP: pc.LocalDescription().SDP})
	var sawError bool
	for {
		m := c.read()
		if a, ok := m.(signal.Answer); ok {
			if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: a.SDP}); err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	for !sawError {
		if e, ok := c.read().(signal.Error); ok && e.Code == signal.CodeBadChat {
			sawError = true
		}
	}
	select {
	case <-closed:
	case <-ctx.Done():
		t.Fatal("the client's data channel on the publish connection was not closed")
	}
}
