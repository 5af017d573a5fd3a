package sfu

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"meeting.dev/meeting/media/client"
	"meeting.dev/meeting/media/signal"
	"meeting.dev/meeting/media/token"
)

// joinHost joins room as user with a host's token.
func joinHost(t testing.TB, ctx context.Context, s *server, room, user string) *client.Client {
	t.Helper()
	tok, err := token.Mint(testKey, token.Claims{Room: room, User: user, Name: "Host " + user, Role: token.RoleHost}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.Join(ctx, client.Options{URL: s.url, Token: tok})
	if err != nil {
		t.Fatalf("join %s: %v", user, err)
	}
	t.Cleanup(c.Close)
	return c
}

// hasError reports whether c got an error with code whose message contains text.
func hasError(c *client.Client, code, text string) bool {
	for _, e := range c.Errors() {
		if e.Code == code && strings.Contains(e.Message, text) {
			return true
		}
	}
	return false
}

// packetsFrom returns how many packets c received of pub's track of source.
func packetsFrom(c, pub *client.Client, source string) uint64 {
	var n uint64
	for _, st := range c.Tracks() {
		if st.Info.Participant == pub.ID() && st.Info.Source == source {
			n += st.Packets
		}
	}
	return n
}

func TestHostMuteStopsTheAudioUntilUnmuted(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s := startSFU(t, Config{})
	host := joinHost(t, ctx, s, "room-mute", "h")
	b := join(t, ctx, s, "room-mute", "b")
	c := join(t, ctx, s, "room-mute", "c")
	for _, src := range []string{signal.SourceAudio, signal.SourceCamera} {
		if _, err := b.Publish(ctx, src, client.MediaOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, ctx, "c to receive b's audio and camera", func() bool {
		return receiving(c, []*client.Client{b}, []string{signal.SourceAudio, signal.SourceCamera}, 20)
	})
	if you := host.You(); !you.Host || you.AudioMuted {
		t.Fatalf("host's joined.you = %+v", you)
	}
	if h, ok := c.Participant(host.ID()); !ok || !h.Host {
		t.Fatalf("c sees the host as %+v", h)
	}

	if err := host.Mute(b.ID()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "b to be told it was muted, and everyone its state", func() bool {
		by := b.MutedBy()
		pb, _ := c.Participant(b.ID())
		ph, _ := host.Participant(b.ID())
		return len(by) == 1 && by[0].ID == host.ID() && by[0].Host && b.You().AudioMuted && pb.AudioMuted && ph.AudioMuted
	})
	// Packets in flight when the mute took effect arrive; none after: b's
	// audio at c goes quiet (for 300 ms; b sends a packet every 20 ms).
	audio, quietSince := packetsFrom(c, b, signal.SourceAudio), time.Now()
	waitFor(t, ctx, "b's audio to stop reaching c", func() bool {
		if n := packetsFrom(c, b, signal.SourceAudio); n != audio {
			audio, quietSince = n, time.Now()
		}
		return time.Since(quietSince) > 300*time.Millisecond
	})
	video := packetsFrom(c, b, signal.SourceCamera)
	time.Sleep(time.Second) // b sends 50 audio packets a second all along
	if got := packetsFrom(c, b, signal.SourceAudio); got != audio {
		t.Fatalf("c received %d audio packets of muted b in a second", got-audio)
	}
	if got := packetsFrom(c, b, signal.SourceCamera); got < video+30 {
		t.Fatalf("c received %d video packets of muted b in a second, want its camera to go on", got-video)
	}

	// b unmutes itself: its audio flows again.
	f := false
	if err := b.SetState(signal.State{AudioMuted: &f}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "everyone to see b unmuted", func() bool {
		pb, _ := c.Participant(b.ID())
		ph, _ := host.Participant(b.ID())
		return !b.You().AudioMuted && !pb.AudioMuted && !ph.AudioMuted
	})
	waitFor(t, ctx, "b's audio to reach c again", func() bool {
		return packetsFrom(c, b, signal.SourceAudio) >= audio+20
	})
	for _, x := range []*client.Client{host, b, c} {
		if errs := x.Errors(); len(errs) != 0 {
			t.Errorf("%s got errors %v", x.ID(), errs)
		}
	}
}

func TestOnlyHostsMuteAndRemoveAndNotHosts(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := startSFU(t, Config{})
	host := joinHost(t, ctx, s, "room-forbid", "h")
	host2 := joinHost(t, ctx, s, "room-forbid", "h") // the host's second device
	b := join(t, ctx, s, "room-forbid", "b")
	c := join(t, ctx, s, "room-forbid", "c")

	// A participant that is no host may do neither; its connection stays open.
	if err := b.Mute(c.ID()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "forbidden mute", func() bool { return hasError(b, signal.CodeForbidden, "only a host may mute") })
	if err := b.Remove(c.ID()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "forbidden remove", func() bool { return hasError(b, signal.CodeForbidden, "only a host may remove") })
	yes := true
	if err := b.SetState(signal.State{HandRaised: &yes}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "b's raised hand after the refusals", func() bool { return b.You().HandRaised })

	// A host may neither mute nor remove a host, itself included.
	for i, id := range []string{host2.ID(), host.ID()} {
		if err := host.Mute(id); err != nil {
			t.Fatal(err)
		}
		if err := host.Remove(id); err != nil {
			t.Fatal(err)
		}
		waitFor(t, ctx, "refusals", func() bool {
			n := 0
			for _, e := range host.Errors() {
				if e.Code == signal.CodeForbidden && strings.Contains(e.Message, "a host cannot be") {
					n++
				}
			}
			return n == 2*(i+1)
		})
	}
	// An unknown participant is a bad message.
	if err := host.Mute("no-such-participant"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "unknown participant", func() bool { return hasError(host, signal.CodeBadMessage, "no such participant") })

	if n := s.sfu.Participants("room-forbid"); n != 4 {
		t.Fatalf("%d participants, want all 4", n)
	}
	for _, x := range []*client.Client{host, host2, b, c} {
		if len(x.MutedBy()) != 0 || x.You().AudioMuted {
			t.Errorf("%s muted: %+v", x.ID(), x.You())
		}
	}
}

func TestHostRemovesEveryConnectionOfAUser(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := startSFU(t, Config{})
	host := joinHost(t, ctx, s, "room-rm", "h")
	phone := join(t, ctx, s, "room-rm", "b")
	laptop := join(t, ctx, s, "room-rm", "b")
	c := join(t, ctx, s, "room-rm", "c")
	if _, err := phone.Publish(ctx, signal.SourceAudio, client.MediaOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "c to receive b's audio", func() bool {
		return receiving(c, []*client.Client{phone}, []string{signal.SourceAudio}, 5)
	})

	if err := host.Remove(laptop.ID()); err != nil {
		t.Fatal(err)
	}
	for _, x := range []*client.Client{phone, laptop} {
		select {
		case <-x.Done():
		case <-ctx.Done():
			t.Fatalf("%s still connected", x.ID())
		}
		if !hasError(x, signal.CodeRemoved, "removed from the meeting by the host") {
			t.Errorf("%s got %v, want removed", x.ID(), x.Errors())
		}
	}
	waitFor(t, ctx, "the others to see b's connections leave and its track end", func() bool {
		for _, x := range []*client.Client{host, c} {
			if _, ok := x.Participant(phone.ID()); ok {
				return false
			}
			if _, ok := x.Participant(laptop.ID()); ok {
				return false
			}
			if len(x.Announced()) != 0 {
				return false
			}
		}
		return s.sfu.Participants("room-rm") == 2
	})
	if tr := c.Tracks(); len(tr) != 1 || !tr[0].Removed {
		t.Errorf("c's tracks after the removal: %+v", tr)
	}

	// b cannot come back with a fresh token, in the first message or in
	// the URL; someone else can.
	for _, inURL := range []bool{false, true} {
		_, err := client.Join(ctx, client.Options{URL: s.url, Token: mint(t, "room-rm", "b"), TokenInQuery: inURL})
		var e signal.Error
		if !errors.As(err, &e) || e.Code != signal.CodeRemoved {
			t.Fatalf("rejoin (token in URL: %v): %v, want error removed", inURL, err)
		}
	}
	join(t, ctx, s, "room-rm", "d")
	if n := s.sfu.Participants("room-rm"); n != 3 {
		t.Fatalf("%d participants, want 3", n)
	}
	// Not even once the room emptied: the ban lasts until the room closes.
	host.Close()
	c.Close()
	if _, err := client.Join(ctx, client.Options{URL: s.url, Token: mint(t, "room-rm", "b")}); err == nil {
		t.Fatal("b rejoined")
	}
	s.sfu.CloseRoom("room-rm", "ended")
	join(t, ctx, s, "room-rm", "b") // a room of the same id later is another room
}

func TestStateReachesEveryoneAndLateJoiners(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := startSFU(t, Config{})
	a := join(t, ctx, s, "room-state", "a")
	b := join(t, ctx, s, "room-state", "b")
	yes := true
	if err := a.SetState(signal.State{HandRaised: &yes}); err != nil {
		t.Fatal(err)
	}
	if err := a.SetState(signal.State{VideoMuted: &yes}); err != nil {
		t.Fatal(err)
	}
	want := signal.Participant{ID: a.ID(), User: "a", Name: "Name a", VideoMuted: true, HandRaised: true}
	waitFor(t, ctx, "a's state at a and b", func() bool {
		pa, _ := b.Participant(a.ID())
		return a.You() == want && pa == want
	})
	for _, x := range []*client.Client{a, b} {
		ups := x.Updates()
		if len(ups) != 2 || !ups[0].HandRaised || ups[0].VideoMuted || ups[1] != want {
			t.Errorf("%s got participant_updated %+v", x.ID(), ups)
		}
	}
	// joined carries everyone's state.
	late := join(t, ctx, s, "room-state", "late")
	if pa, _ := late.Participant(a.ID()); pa != want {
		t.Errorf("late joiner sees a as %+v", pa)
	}

	// A burst of 10, then 2 per second: 30 at once are mostly refused.
	f := false
	for range 30 {
		if err := b.SetState(signal.State{AudioMuted: &f}); err != nil {
			t.Fatal(err)
		}
	}
	var refused int
	waitFor(t, ctx, "every state change answered", func() bool {
		refused = 0
		for _, e := range b.Errors() {
			if e.Code == signal.CodeBadMessage && strings.HasPrefix(e.Message, "too many state changes") {
				refused++
			}
		}
		return refused+len(b.Updates())-2 == 30 // b got a's 2 before
	})
	if refused < 15 || refused > 20 {
		t.Errorf("%d of 30 state changes refused, want about 20", refused)
	}
	waitFor(t, ctx, "the others to get each accepted change", func() bool {
		return len(a.Updates()) == 2+30-refused && len(late.Updates()) == 30-refused
	})
}
