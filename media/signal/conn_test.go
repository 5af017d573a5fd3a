package signal

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// echoServer runs a Conn per WebSocket that echoes every decoded message.
func echoServer(t *testing.T) string {
	t.Helper()
	up := websocket.Upgrader{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		c := NewConn(ws)
		_ = c.Run(r.Context(), func(m Message) { _ = c.Send(m) })
	}))
	t.Cleanup(srv.Close)
	return "ws" + strings.TrimPrefix(srv.URL, "http")
}

func dial(t *testing.T, url string) *websocket.Conn {
	t.Helper()
	ws, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ws.Close() })
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	return ws
}

func readMsg(t *testing.T, ws *websocket.Conn) Message {
	t.Helper()
	_, b, err := ws.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	m, err := Decode(b)
	if err != nil {
		t.Fatalf("server sent %s: %v", b, err)
	}
	return m
}

func TestConnAnswersBadInputWithErrorsAndGoesOn(t *testing.T) {
	ws := dial(t, echoServer(t))
	for _, tc := range []struct {
		typ  int
		in   string
		code string
	}{
		{websocket.TextMessage, `{"type":"nonsense"}`, CodeUnknownType},
		{websocket.TextMessage, `{{{`, CodeBadMessage},
		{websocket.TextMessage, `{"type":"offer"}`, CodeBadMessage},
		{websocket.BinaryMessage, `{"type":"leave"}`, CodeBadMessage},
	} {
		if err := ws.WriteMessage(tc.typ, []byte(tc.in)); err != nil {
			t.Fatal(err)
		}
		e, ok := readMsg(t, ws).(Error)
		if !ok || e.Code != tc.code {
			t.Fatalf("%s: got %#v, want error %s", tc.in, e, tc.code)
		}
	}
	// The connection still works.
	if err := ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"answer","sdp":"v=0"}`)); err != nil {
		t.Fatal(err)
	}
	if a, ok := readMsg(t, ws).(Answer); !ok || a.SDP != "v=0" {
		t.Fatalf("echo = %#v", a)
	}
}

func TestConnClosesOnOversizedMessage(t *testing.T) {
	ws := dial(t, echoServer(t))
	big := `{"type":"join","token":"` + strings.Repeat("a", MaxMessageSize) + `"}`
	if err := ws.WriteMessage(websocket.TextMessage, []byte(big)); err != nil {
		t.Fatal(err)
	}
	_, _, err := ws.ReadMessage()
	if !websocket.IsCloseError(err, websocket.CloseMessageTooBig) {
		t.Fatalf("read after oversized message: %v, want close 1009", err)
	}
}

func TestConnCloseFlushesQueuedMessages(t *testing.T) {
	up := websocket.Upgrader{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		c := NewConn(ws)
		_ = c.Send(Closing{Reason: "bye"})
		c.Close("done")
		_ = c.Run(context.Background(), func(Message) {})
		if err := c.Send(Leave{}); err != ErrClosed {
			t.Errorf("Send after close = %v, want ErrClosed", err)
		}
	}))
	defer srv.Close()
	ws := dial(t, "ws"+strings.TrimPrefix(srv.URL, "http"))
	if m, ok := readMsg(t, ws).(Closing); !ok || m.Reason != "bye" {
		t.Fatalf("got %#v, want closing", m)
	}
	_, _, err := ws.ReadMessage()
	if !websocket.IsCloseError(err, websocket.CloseNormalClosure) {
		t.Fatalf("got %v, want normal close", err)
	}
}
