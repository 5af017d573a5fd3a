package sfu

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"meeting.dev/meeting/media/client"
	"meeting.dev/meeting/media/signal"
)

// roomKeys is a per-room key lookup whose rooms open and close.
type roomKeys struct {
	mu   sync.Mutex
	keys map[string][]byte
}

func (k *roomKeys) open(room string, key []byte) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.keys == nil {
		k.keys = map[string][]byte{}
	}
	k.keys[room] = key
}

func (k *roomKeys) close(room string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.keys, room)
}

func (k *roomKeys) lookup(room string) ([]byte, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if key, ok := k.keys[room]; ok {
		return key, nil
	}
	return nil, errors.New("room is not open")
}

func TestEachRoomHasItsOwnKey(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var keys roomKeys
	keys.open("room-1", testKey)
	keys.open("room-2", []byte("room two's key, also 32 bytes..."))
	s := startSFU(t, Config{Keys: keys.lookup})

	a := join(t, ctx, s, "room-1", "a") // minted with testKey
	if a.Room() != "room-1" {
		t.Fatalf("joined %q", a.Room())
	}
	for _, tc := range []struct{ name, room, want string }{
		{"room two with room one's key", "room-2", "unauthorized"},
		{"a room not open", "room-3", "room is not open"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := client.Join(ctx, client.Options{URL: s.url, Token: mint(t, tc.room, "b")})
			if err == nil {
				c.Close()
				t.Fatal("join succeeded")
			}
			if !strings.Contains(err.Error(), signal.CodeUnauthorized) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want unauthorized saying %q", err, tc.want)
			}
		})
	}
}

func TestSameUserOnTwoDevices(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := startSFU(t, Config{})
	phone := join(t, ctx, s, "room-2d", "ada")
	laptop := join(t, ctx, s, "room-2d", "ada")
	if phone.ID() == laptop.ID() || phone.ID() == "" {
		t.Fatalf("participant ids %q and %q, want two distinct ids", phone.ID(), laptop.ID())
	}
	if n := s.sfu.Participants("room-2d"); n != 2 {
		t.Fatalf("%d participants, want 2", n)
	}
	waitFor(t, ctx, "each device to see the other", func() bool {
		ps := phone.Participants()
		return len(ps) == 1 && ps[0].ID == laptop.ID() && ps[0].User == "ada"
	})
	if _, err := phone.Publish(ctx, signal.SourceAudio, client.MediaOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "the laptop to receive the phone", func() bool {
		return receiving(laptop, []*client.Client{phone}, []string{signal.SourceAudio}, 5)
	})
}

func TestCloseRoomEndsItsSessionsOnly(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var keys roomKeys
	keys.open("room-x", testKey)
	keys.open("room-y", testKey)
	s := startSFU(t, Config{Keys: keys.lookup})
	a := join(t, ctx, s, "room-x", "a")
	b := join(t, ctx, s, "room-x", "b")
	other := join(t, ctx, s, "room-y", "c")
	if _, err := a.Publish(ctx, signal.SourceCamera, client.MediaOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "b receives a", func() bool { return receiving(b, []*client.Client{a}, []string{signal.SourceCamera}, 5) })

	keys.close("room-x")
	before := time.Now()
	s.sfu.CloseRoom("room-x", "the meeting was deleted")
	for _, c := range []*client.Client{a, b} {
		select {
		case <-c.Done():
		case <-ctx.Done():
			t.Fatal("a participant of the closed room is still connected")
		}
		cl := c.Closing()
		if cl == nil || cl.Reason != "the meeting was deleted" || cl.Deadline.Before(before.Add(-time.Second)) || cl.Deadline.After(time.Now().Add(time.Second)) {
			t.Fatalf("closing = %+v, want the reason and a deadline of now", cl)
		}
	}
	if n := s.sfu.Participants("room-x"); n != 0 {
		t.Fatalf("%d participants in the closed room", n)
	}
	if n := s.sfu.Rooms(); n != 1 {
		t.Fatalf("%d rooms, want the other one", n)
	}
	select {
	case <-other.Done():
		t.Fatal("closing room-x ended room-y's participant")
	default:
	}
	if _, err := client.Join(ctx, client.Options{URL: s.url, Token: mint(t, "room-x", "late")}); err == nil ||
		!strings.Contains(err.Error(), signal.CodeUnauthorized) {
		t.Fatalf("join after close: %v, want unauthorized", err)
	}
	s.sfu.CloseRoom("room-x", "again")    // gone: no-op
	s.sfu.CloseRoom("never-existed", "x") // no-op
}

func TestWarnRoomTellsEveryoneAndLateJoiners(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	now := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	var clock struct {
		sync.Mutex
		t time.Time
	}
	clock.t = now
	s := startSFU(t, Config{Now: func() time.Time {
		clock.Lock()
		defer clock.Unlock()
		return clock.t
	}})
	mintAt := func(room, user string) string {
		return mintIssued(t, room, user, now)
	}
	// A room warned before anyone is in it warns its first participant.
	s.sfu.WarnRoom("room-early", now.Add(time.Minute))
	early, err := client.Join(ctx, client.Options{URL: s.url, Token: mintAt("room-early", "e")})
	if err != nil {
		t.Fatal(err)
	}
	defer early.Close()
	waitFor(t, ctx, "the warning of an empty room", func() bool { return early.Ending() != nil })
	if e := early.Ending(); e.RemainingMS != 60000 {
		t.Fatalf("ending = %+v, want 60000 ms", e)
	}

	a, err := client.Join(ctx, client.Options{URL: s.url, Token: mintAt("room-w", "a")})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	closesAt := now.Add(5 * time.Minute)
	s.sfu.WarnRoom("room-w", closesAt)
	waitFor(t, ctx, "the warning", func() bool { return a.Ending() != nil })
	if e := a.Ending(); !e.ClosesAt.Equal(closesAt) || e.RemainingMS != 300000 {
		t.Fatalf("ending = %+v, want closes_at %s and 300000 ms", e, closesAt)
	}

	clock.Lock()
	clock.t = now.Add(4 * time.Minute)
	clock.Unlock()
	late, err := client.Join(ctx, client.Options{URL: s.url, Token: mintAt("room-w", "late")})
	if err != nil {
		t.Fatal(err)
	}
	defer late.Close()
	waitFor(t, ctx, "the warning of a late joiner", func() bool { return late.Ending() != nil })
	if e := late.Ending(); !e.ClosesAt.Equal(closesAt) || e.RemainingMS != 60000 {
		t.Fatalf("late ending = %+v, want closes_at %s and 60000 ms", e, closesAt)
	}
}

func TestHandlerServesOnlySignalling(t *testing.T) {
	s := startSFU(t, Config{})
	base := "http" + strings.TrimPrefix(strings.TrimSuffix(s.url, "/ws"), "ws")
	for _, path := range []string{"/healthz", "/readyz", "/metrics", "/ws"} {
		req, err := http.NewRequest(http.MethodGet, base+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header = originOf(s.url) // past the Origin check
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest { // not a WebSocket upgrade
			t.Errorf("GET %s: %d, want 400 from the WebSocket handler", path, resp.StatusCode)
		}
	}
	if !s.sfu.Ready() {
		t.Fatal("not ready before shutdown")
	}
	s.sfu.Shutdown(context.Background())
	if s.sfu.Ready() {
		t.Fatal("ready after shutdown")
	}
}

func TestMetricsGoToTheRegisterer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	reg := prometheus.NewRegistry()
	s := startSFU(t, Config{Registerer: reg})
	_ = join(t, ctx, s, "room-m", "a")
	names := map[string]bool{}
	waitFor(t, ctx, "the join's metrics", func() bool { // the join is counted just after joined is sent
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			names[mf.GetName()] = true
		}
		return names["meeting_sfu_participants"] && names["meeting_sfu_joins_total"]
	})
	if names["go_goroutines"] {
		t.Error("the SFU registered the Go collector: that is the caller's")
	}
	// A second SFU on the same registerer is refused, not a panic.
	if _, err := New(Config{Keys: fixedKey, Registerer: reg}, nil); err == nil {
		t.Error("two SFUs registered the same metrics")
	}
	// Without a registerer the metrics go nowhere, and nothing fails.
	_ = startSFU(t, Config{})
}
