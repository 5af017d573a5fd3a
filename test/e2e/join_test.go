package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"meeting.dev/meeting/internal/store/storetest"
	"meeting.dev/meeting/media/client"
	"meeting.dev/meeting/media/signal"
)

// standalone starts `meeting` with every port random and returns it with
// its API's base URL. dataDir keeps the SQLite database across restarts.
func standalone(t testing.TB, dataDir string, extra ...string) (*process, string) {
	t.Helper()
	env := append([]string{"MEETING_HTTP_ADDR=127.0.0.1:0", "MEETING_ADMIN_PASSWORD=first-admin-pw", "MEETING_LOG_FORMAT=json", "MEETING_DATA_DIR=" + dataDir}, extra...)
	p := start(t, env)
	return p, p.logLine(t, "listening")["addr"].(string)
}

// account registers username and returns the API logged in as it.
func account(t testing.TB, base, username string) *client.API {
	t.Helper()
	(&api{t: t, base: base}).call("POST", "/user/register", map[string]string{"username": username, "password": username + "-password"}, 200, nil)
	a, err := client.Login(context.Background(), base, username, username+"-password")
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// raw returns the e2e REST helper for a logged-in client.API.
func raw(t testing.TB, a *client.API) *api { return &api{t: t, base: a.URL, token: a.Token} }

// createMeeting schedules a meeting from begin to end with participants.
func createMeeting(t testing.TB, a *client.API, name string, begin, end time.Time, participants ...string) meeting {
	t.Helper()
	var m meeting
	body := map[string]any{"name": name, "begin_at": begin.UnixMilli(), "end_at": end.UnixMilli()}
	if len(participants) > 0 {
		body["participants"] = participants
	}
	raw(t, a).call("POST", "/auth/meeting/create", body, 200, &m)
	return m
}

// joinAndPublish joins identity through the API and publishes audio and video.
func joinAndPublish(t testing.TB, a *client.API, identity string, opts client.Options) *client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, j, err := a.JoinMeeting(ctx, identity, opts)
	if err != nil {
		t.Fatalf("join %s: %v", identity, err)
	}
	t.Cleanup(c.Close)
	if !strings.HasPrefix(j.SignalURL, "ws://127.0.0.1:") || !strings.HasSuffix(j.SignalURL, "/ws") {
		t.Fatalf("signal_url = %q, want ws://127.0.0.1:<api port>/ws", j.SignalURL)
	}
	if len(j.ICEServers) == 0 || j.ICEServers[0].Username == "" {
		t.Fatalf("ice_servers = %+v, want TURN with credentials", j.ICEServers)
	}
	for _, src := range []string{signal.SourceAudio, signal.SourceCamera} {
		if _, err := c.Publish(ctx, src, client.MediaOptions{}); err != nil {
			t.Fatalf("publish %s: %v", src, err)
		}
	}
	return c
}

// receivesFrom waits until c receives audio and video packets (and a VP8
// keyframe) published by the participant with id from.
func receivesFrom(t testing.TB, c *client.Client, from string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := client.Wait(ctx, func() bool {
		var audio, video bool
		for _, s := range c.Tracks() {
			if s.Info.Participant != from {
				continue
			}
			switch s.Info.Kind {
			case "audio":
				audio = audio || s.Packets >= 20
			case "video":
				video = video || (s.Packets >= 20 && s.Keyframes > 0)
			}
		}
		return audio && video
	})
	if err != nil {
		t.Fatalf("%s did not receive audio, video and a keyframe from %s: %v; tracks %+v", c.ID(), from, err, c.Tracks())
	}
}

// chats waits until c has received text from participant from.
func chats(t testing.TB, c *client.Client, from, text string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	err := client.Wait(ctx, func() bool {
		for _, m := range c.Chats() {
			if m.From == from && m.Text == text {
				return true
			}
		}
		return false
	})
	if err != nil {
		t.Fatalf("%s did not get chat %q from %s: %v (got %+v)", c.ID(), text, from, err, c.Chats())
	}
}

func sendChat(t testing.TB, c *client.Client, text string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	select {
	case <-c.ChatOpen():
	case <-ctx.Done():
		t.Fatal("chat channel did not open")
	}
	if err := c.Chat(text); err != nil {
		t.Fatal(err)
	}
}

// closedWith waits until c's room closes, telling it reason.
func closedWith(t testing.TB, c *client.Client, reason string) {
	t.Helper()
	select {
	case <-c.Done():
	case <-time.After(30 * time.Second):
		t.Fatalf("%s still connected, want closed with %q", c.ID(), reason)
	}
	if cl := c.Closing(); cl == nil || cl.Reason != reason {
		t.Fatalf("%s closing = %+v, want reason %q", c.ID(), cl, reason)
	}
}

// The whole join flow against the built binary, standalone on SQLite and
// on MariaDB: two users join a meeting through the API and exchange media
// and chat, directly and relay-only through standalone TURN; the API's
// rules (403, 409, 410-to-be) hold; a meeting warns at end_at and closes
// after the grace; a deleted meeting ends its call; a restart brings rooms
// back; a participant removed after joining cannot join again.
func TestJoinStandalone(t *testing.T) {
	for _, db := range []string{"sqlite", "mysql"} {
		t.Run(db, func(t *testing.T) {
			dataDir := t.TempDir()
			var extra []string
			if db == "mysql" {
				extra = append(extra, "MEETING_DATABASE_URL="+storetest.NewDatabaseURL(t))
			}
			extra = append(extra, "MEETING_END_GRACE=4s")
			p, base := standalone(t, dataDir, extra...)
			alice, bob, carol := account(t, base, "alice"), account(t, base, "bob"), account(t, base, "carol")

			now := time.Now()
			m := createMeeting(t, alice, "standup", now, now.Add(time.Hour), "bob")

			a := joinAndPublish(t, alice, m.Identity, client.Options{})
			b := joinAndPublish(t, bob, m.Identity, client.Options{})
			receivesFrom(t, a, b.ID())
			receivesFrom(t, b, a.ID())
			sendChat(t, a, "hello bob")
			sendChat(t, b, "hello alice")
			chats(t, b, a.ID(), "hello bob")
			chats(t, a, b.ID(), "hello alice")

			var got struct {
				Phase  string `json:"phase"`
				Online int    `json:"participants_online"`
			}
			raw(t, alice).call("GET", "/auth/meeting/get?identity="+m.Identity, nil, 200, &got)
			if got.Phase != "Running" || got.Online != 2 {
				t.Fatalf("get = %+v, want Running with 2 online", got)
			}

			// The same call relay-only through standalone TURN, from a
			// second device of each user.
			ar := joinAndPublish(t, alice, m.Identity, client.Options{RelayOnly: true})
			br := joinAndPublish(t, bob, m.Identity, client.Options{RelayOnly: true})
			receivesFrom(t, ar, br.ID())
			receivesFrom(t, br, ar.ID())
			if relayed := relayedToPeer(t, strings.TrimPrefix(base, "http://")); relayed < 100 {
				t.Fatalf("standalone TURN relayed %v packets to peers, want the relay-only call's media", relayed)
			}

			// meeting loadtest drives the meeting through the same join flow.
			loadtestThroughAPI(t, base, m.Identity)

			// Only the creator and participants may join; not before the window.
			if _, err := carol.Join(context.Background(), m.Identity); !client.IsStatus(err, http.StatusForbidden) {
				t.Fatalf("carol joins: %v, want 403", err)
			}
			later := createMeeting(t, alice, "later", now.Add(time.Hour), now.Add(2*time.Hour))
			var notOpen struct {
				BeginAt int64 `json:"begin_at"`
			}
			env := raw(t, alice).call("POST", "/auth/meeting/join", map[string]string{"identity": later.Identity}, 409, &notOpen)
			begins := time.UnixMilli(later.BeginAt).UTC().Format(time.RFC3339)
			if notOpen.BeginAt != later.BeginAt || !strings.Contains(env.Msg, "begins at "+begins) {
				t.Fatalf("409 %q with begin_at %d, want begin_at %d and %s in the message", env.Msg, notOpen.BeginAt, later.BeginAt, begins)
			}

			// A participant removed after joining cannot join again.
			raw(t, alice).call("DELETE", "/auth/meeting/members?identity="+m.Identity+"&username=bob", nil, 200, nil)
			if _, err := bob.Join(context.Background(), m.Identity); !client.IsStatus(err, http.StatusForbidden) {
				t.Fatalf("removed bob joins: %v, want 403", err)
			}
			raw(t, alice).call("POST", "/auth/meeting/members", map[string]any{"identity": m.Identity, "usernames": []string{"bob"}}, 200, nil)

			// A restart brings the open room back; clients join again.
			p.stop(t)
			for _, c := range []*client.Client{a, b, ar, br} {
				closedWith(t, c, "server shutting down")
			}
			_, base = standalone(t, dataDir, extra...)
			alice.URL, bob.URL = base, base
			a = joinAndPublish(t, alice, m.Identity, client.Options{})
			b = joinAndPublish(t, bob, m.Identity, client.Options{})
			receivesFrom(t, b, a.ID())

			// Deleting the meeting ends the call with a clear reason.
			raw(t, alice).call("DELETE", "/auth/meeting/delete?identity="+m.Identity, nil, 200, nil)
			closedWith(t, a, "the meeting was deleted")
			closedWith(t, b, "the meeting was deleted")

			// A meeting whose end is seconds away warns at end_at and
			// closes after the grace (4s); then it is gone (410).
			end := time.Now().Add(3 * time.Second)
			short := createMeeting(t, alice, "short", time.Now(), end, "bob")
			sa := joinAndPublish(t, alice, short.Identity, client.Options{})
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if err := client.Wait(ctx, func() bool { return sa.Ending() != nil }); err != nil {
				t.Fatalf("no ending warning: %v", err)
			}
			if w := sa.Ending(); time.Now().Before(end.Add(-500*time.Millisecond)) || w.ClosesAt.Sub(end.Add(4*time.Second)).Abs() > time.Second {
				t.Fatalf("warning %+v at %s, want at end_at %s closing 4s later", w, time.Now(), end)
			}
			closedWith(t, sa, "the meeting has ended")
			raw(t, alice).call("POST", "/auth/meeting/join", map[string]string{"identity": short.Identity}, 410, nil)
		})
	}
}

// loadtestThroughAPI runs `meeting loadtest --api` as bob: one publisher and
// two subscribers join m through the REST API; every packet arrives.
func loadtestThroughAPI(t *testing.T, base, identity string) {
	t.Helper()
	p := start(t, []string{"MEETING_PASSWORD=bob-password"}, "loadtest", "--api", base, "--user", "bob",
		"--meeting", identity, "--publishers", "1", "--subscribers", "2", "--duration", "2s", "--json")
	select {
	case <-p.done:
	case <-time.After(2 * time.Minute):
		t.Fatal("loadtest did not finish in 2 minutes")
	}
	if p.err != nil {
		t.Fatalf("loadtest: %v\n%s", p.err, p.stderr.String())
	}
	var res struct {
		Event    string `json:"event"`
		Received uint64 `json:"received"`
		Lost     uint64 `json:"lost"`
		Tracks   int    `json:"tracks"`
	}
	for _, line := range strings.Split(p.stdout.String(), "\n") {
		if strings.Contains(line, `"event":"result"`) {
			if err := json.Unmarshal([]byte(line), &res); err != nil {
				t.Fatal(err)
			}
		}
	}
	if res.Event != "result" || res.Tracks != 1 || res.Received < 50 || res.Lost != 0 {
		t.Fatalf("loadtest result %+v from:\n%s", res, p.stdout.String())
	}
}
