package sfu

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"meeting.dev/meeting/media/client"
	"meeting.dev/meeting/media/signal"
	"meeting.dev/meeting/media/token"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var testKey = []byte("test key: 32 bytes of room secret")

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
	if cfg.TokenKey == nil {
		cfg.TokenKey = testKey
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
