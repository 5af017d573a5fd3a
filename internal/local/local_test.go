package local

import (
	"context"
	"errors"
	"net"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clocktesting "k8s.io/utils/clock/testing"

	"meeting.dev/meeting/internal/meeting"
	"meeting.dev/meeting/internal/schedule"
	"meeting.dev/meeting/media/client"
	"meeting.dev/meeting/media/token"
)

var policy = schedule.Policy{LeadTime: time.Minute, Grace: 2 * time.Minute}

// fixture is standalone's media on loopback, driven by a fake clock, with
// signalling served over HTTP as the API's listener serves it.
type fixture struct {
	rooms *Rooms
	clock *clocktesting.FakeClock
	ws    string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ice, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	tu, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	tl, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	clk := clocktesting.NewFakeClock(time.Now())
	r, err := New(Config{ICEConn: ice, TURNConns: []net.PacketConn{tu}, TURNListeners: []net.Listener{tl},
		PublicIP: netip.MustParseAddr("127.0.0.1"), Policy: policy, DrainTimeout: time.Second,
		Registerer: prometheus.NewRegistry(), Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(r.Handler())
	t.Cleanup(func() {
		srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := r.Shutdown(ctx); err != nil {
			t.Error(err)
		}
	})
	return &fixture{rooms: r, clock: clk, ws: "ws" + strings.TrimPrefix(srv.URL, "http") + SignalPath}
}

// join joins the meeting's open room as user, as the API's join does.
func (f *fixture) join(t *testing.T, identity, user string) *client.Client {
	t.Helper()
	room, err := f.rooms.Room(context.Background(), identity)
	if err != nil {
		t.Fatalf("room %s: %v", identity, err)
	}
	tok, err := token.Mint(room.TokenKey, token.Claims{Room: identity, User: user, Name: user, IssuedAt: f.clock.Now()}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := client.Join(ctx, client.Options{URL: f.ws, Token: tok})
	if err != nil {
		t.Fatalf("join %s: %v", identity, err)
	}
	t.Cleanup(c.Close)
	return c
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := client.Wait(ctx, cond); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func closedWith(t *testing.T, c *client.Client, reason string) {
	t.Helper()
	select {
	case <-c.Done():
	case <-time.After(20 * time.Second):
		t.Fatalf("still connected; want closed with %q", reason)
	}
	if cl := c.Closing(); cl == nil || cl.Reason != reason {
		t.Fatalf("closing = %+v, want reason %q", cl, reason)
	}
}

// A room opens at beginAt − lead, warns at endAt, closes at endAt + grace,
// by the fake clock alone.
func TestRoomFollowsTheSchedule(t *testing.T) {
	f := newFixture(t)
	begin := f.clock.Now().Add(10 * time.Minute)
	m := meeting.Meeting{Identity: "m-1", BeginAt: begin, EndAt: begin.Add(30 * time.Minute)}
	if err := f.rooms.Schedule(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	if _, err := f.rooms.Room(context.Background(), m.Identity); !errors.Is(err, meeting.ErrMediaNotReady) {
		t.Fatalf("room before lead time: %v, want ErrMediaNotReady", err)
	}
	if st := f.rooms.Status(context.Background(), m.Identity); st.Ready {
		t.Fatal("ready before lead time")
	}

	f.clock.Step(9 * time.Minute) // begin − lead
	waitFor(t, "room open at beginAt − lead", func() bool { return f.rooms.Status(context.Background(), m.Identity).Ready })
	room, err := f.rooms.Room(context.Background(), m.Identity)
	if err != nil {
		t.Fatal(err)
	}
	if room.SignalURL != SignalPath || len(room.TokenKey) != 32 || len(room.TURNSecret) != 32 || len(room.TURNURIs) != 2 ||
		!strings.HasPrefix(room.TURNURIs[0], "turn:127.0.0.1:") || !strings.HasSuffix(room.TURNURIs[1], "?transport=tcp") {
		t.Fatalf("room = %+v", room)
	}
	a, b := f.join(t, m.Identity, "alice"), f.join(t, m.Identity, "bob")
	waitFor(t, "two online", func() bool { return f.rooms.Status(context.Background(), m.Identity).Online == 2 })

	f.clock.Step(31 * time.Minute) // endAt
	closesAt := m.EndAt.Add(policy.Grace)
	for _, c := range []*client.Client{a, b} {
		waitFor(t, "ending warning", func() bool { return c.Ending() != nil })
		if w := c.Ending(); w.ClosesAt.Sub(closesAt).Abs() >= time.Millisecond { // the wire carries milliseconds
			t.Fatalf("warning closes at %s, want %s", w.ClosesAt, closesAt)
		}
	}
	if st := f.rooms.Status(context.Background(), m.Identity); !st.Ready {
		t.Fatal("room closed during the grace")
	}

	f.clock.Step(policy.Grace) // endAt + grace
	closedWith(t, a, ReasonEnded)
	closedWith(t, b, ReasonEnded)
	if _, err := f.rooms.Room(context.Background(), m.Identity); !errors.Is(err, meeting.ErrMediaNotReady) {
		t.Fatalf("room after the grace: %v", err)
	}
	if f.rooms.Open() != 0 {
		t.Fatalf("%d rooms open after the end", f.rooms.Open())
	}
}

// Moving an open meeting later closes its room and opens it again at the
// new time; removing a meeting closes its room at once with the reason.
func TestEditAndRemove(t *testing.T) {
	f := newFixture(t)
	now := f.clock.Now()
	m := meeting.Meeting{Identity: "m-2", BeginAt: now, EndAt: now.Add(time.Hour)}
	if err := f.rooms.Schedule(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	a := f.join(t, m.Identity, "alice")

	m.BeginAt, m.EndAt = now.Add(2*time.Hour), now.Add(3*time.Hour)
	if err := f.rooms.Schedule(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	closedWith(t, a, ReasonRescheduled)
	if f.rooms.Status(context.Background(), m.Identity).Ready {
		t.Fatal("rescheduled room still open")
	}
	f.clock.Step(2*time.Hour - policy.LeadTime)
	waitFor(t, "open again at the new time", func() bool { return f.rooms.Status(context.Background(), m.Identity).Ready })

	b := f.join(t, m.Identity, "bob")
	if err := f.rooms.Remove(context.Background(), m.Identity, "the meeting was deleted"); err != nil {
		t.Fatal(err)
	}
	closedWith(t, b, "the meeting was deleted")
	if _, err := f.rooms.Room(context.Background(), m.Identity); !errors.Is(err, meeting.ErrMediaNotReady) {
		t.Fatalf("removed room: %v", err)
	}
	// The removed meeting's timers are gone: stepping past its times opens nothing.
	f.clock.Step(5 * time.Hour)
	if f.rooms.Open() != 0 {
		t.Fatal("a removed meeting's room opened")
	}
}

// A token for a room that is not open is refused by the SFU.
func TestClosedRoomRefusesTokens(t *testing.T) {
	f := newFixture(t)
	tok, err := token.Mint([]byte(strings.Repeat("k", 32)), token.Claims{Room: "nope", User: "u"}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if c, err := client.Join(ctx, client.Options{URL: f.ws, Token: tok}); err == nil {
		c.Close()
		t.Fatal("joined a room that is not open")
	}
}

// A meeting's room holds its MaxParticipants at once, as the operator's
// `meeting sfu --max-participants` does for a Meeting; an edit of the
// limit applies to the next join.
func TestRoomHoldsTheMeetingsLimit(t *testing.T) {
	f := newFixture(t)
	now := f.clock.Now()
	m := meeting.Meeting{Identity: "m-limit", BeginAt: now, EndAt: now.Add(time.Hour), MaxParticipants: 2}
	if err := f.rooms.Schedule(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	// Another open room has the default limit, not this one's.
	other := meeting.Meeting{Identity: "m-other", BeginAt: now, EndAt: now.Add(time.Hour)}
	if err := f.rooms.Schedule(context.Background(), other); err != nil {
		t.Fatal(err)
	}
	joinErr := func(identity, user string) error {
		room, err := f.rooms.Room(context.Background(), identity)
		if err != nil {
			t.Fatal(err)
		}
		tok, err := token.Mint(room.TokenKey, token.Claims{Room: identity, User: user, Name: user, IssuedAt: f.clock.Now()}, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		c, err := client.Join(ctx, client.Options{URL: f.ws, Token: tok})
		if err == nil {
			t.Cleanup(c.Close)
		}
		return err
	}
	f.join(t, m.Identity, "alice")
	f.join(t, m.Identity, "bob")
	if err := joinErr(m.Identity, "carol"); err == nil || !strings.Contains(err.Error(), "room_full") {
		t.Fatalf("third join into a room of 2: %v, want room_full", err)
	}
	for _, u := range []string{"a", "b", "c"} {
		f.join(t, other.Identity, u)
	}
	m.MaxParticipants = 3
	if err := f.rooms.Schedule(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	f.join(t, m.Identity, "carol")
	if err := joinErr(m.Identity, "dave"); err == nil || !strings.Contains(err.Error(), "room_full") {
		t.Fatalf("fourth join into a room of 3: %v, want room_full", err)
	}
	if n := f.rooms.Status(context.Background(), m.Identity).Online; n != 3 {
		t.Errorf("%d online, want 3", n)
	}
}
