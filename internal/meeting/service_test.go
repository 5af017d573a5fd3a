package meeting_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"meeting.dev/meeting/internal/meeting"
	"meeting.dev/meeting/internal/schedule"
	"meeting.dev/meeting/internal/store"
	"meeting.dev/meeting/internal/store/storetest"
	"meeting.dev/meeting/media/token"
)

var ctx = context.Background()

var policy = schedule.Policy{LeadTime: time.Minute, Grace: 2 * time.Minute}

// rooms is a Rooms that records what the service tells it and answers as
// the test sets it.
type rooms struct {
	mu        sync.Mutex
	room      meeting.Room
	roomErr   error
	status    meeting.RoomStatus
	failWith  error // returned by Schedule and Remove
	scheduled []meeting.Meeting
	removed   []string
}

func newRooms() *rooms {
	return &rooms{room: meeting.Room{SignalURL: "/ws", TokenKey: []byte(strings.Repeat("k", 32)),
		TURNSecret: []byte("turn-secret"), TURNURIs: []string{"turn:127.0.0.1:3478?transport=udp", "turn:127.0.0.1:3478?transport=tcp"}}}
}

func (r *rooms) Schedule(_ context.Context, m meeting.Meeting) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.scheduled = append(r.scheduled, m)
	return r.failWith
}

func (r *rooms) Remove(_ context.Context, identity, reason string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.removed = append(r.removed, identity+": "+reason)
	return r.failWith
}

func (r *rooms) Room(context.Context, string) (meeting.Room, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.room, r.roomErr
}

func (r *rooms) Status(context.Context, string) meeting.RoomStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.status
}

func (r *rooms) set(f func(r *rooms)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f(r)
}

// env is the service on a real store with a clock the test sets.
type env struct {
	t     *testing.T
	svc   *meeting.Service
	store *store.Store
	rooms *rooms
	now   time.Time
	log   bytes.Buffer
	users map[string]meeting.User
}

func newEnv(t *testing.T, dialect string) *env {
	t.Helper()
	e := &env{t: t, store: storetest.Open(t, dialect), rooms: newRooms(), users: map[string]meeting.User{},
		now: time.Date(2030, 3, 4, 9, 0, 0, 0, time.UTC)}
	var err error
	e.svc, err = meeting.New(meeting.Config{Store: e.store, Rooms: e.rooms, Policy: policy,
		Now: func() time.Time { return e.now }, Log: slog.New(slog.NewTextHandler(&e.log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"alice", "bob", "carol"} {
		a, err := e.store.CreateUser(ctx, n, "hash")
		if err != nil {
			t.Fatal(err)
		}
		e.users[n] = a.User()
	}
	return e
}

// forEachDialect runs f on SQLite and MariaDB.
func forEachDialect(t *testing.T, f func(t *testing.T, e *env)) {
	for _, d := range storetest.Dialects {
		t.Run(d, func(t *testing.T) {
			t.Parallel()
			f(t, newEnv(t, d))
		})
	}
}

// meeting creates alice's meeting from begin to end with bob invited.
func (e *env) meeting(begin, end time.Time) meeting.Meeting {
	e.t.Helper()
	v, err := e.svc.Create(ctx, e.users["alice"], meeting.NewMeeting{Name: "planning", BeginAt: begin, EndAt: end, Participants: []string{"bob"}})
	if err != nil {
		e.t.Fatal(err)
	}
	return v.Meeting
}

func wantErr(t *testing.T, what string, err, kind error, msg string) {
	t.Helper()
	if !errors.Is(err, kind) || (msg != "" && (err == nil || !strings.Contains(err.Error(), msg))) {
		t.Errorf("%s: got %v, want %v with %q", what, err, kind, msg)
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	st := storetest.Open(t, "sqlite")
	for _, c := range []meeting.Config{
		{Rooms: newRooms()},
		{Store: st},
		{Store: st, Rooms: newRooms(), Policy: schedule.Policy{LeadTime: -time.Second}},
		{Store: st, Rooms: newRooms(), Policy: schedule.Policy{Grace: -time.Second}},
		{Store: st, Rooms: newRooms(), JoinTokenTTL: -time.Second},
	} {
		if _, err := meeting.New(c); err == nil {
			t.Errorf("New(%+v) accepted", c)
		}
	}
}

// Who may do what: the creator everything; a participant sees and joins;
// anyone else nothing; an unknown meeting is ErrNotFound for all.
func TestPermissions(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		m := e.meeting(e.now.Add(30*time.Second), e.now.Add(time.Hour)) // open: within the lead time
		e.rooms.set(func(r *rooms) { r.status = meeting.RoomStatus{Ready: true} })
		unknown := "00000000-0000-4000-8000-000000000000"
		name := "renamed"
		ops := []struct {
			name string
			do   func(u meeting.User, id string) error
		}{
			{"get", func(u meeting.User, id string) error { _, err := e.svc.Get(ctx, u, id); return err }},
			{"members", func(u meeting.User, id string) error { _, err := e.svc.Members(ctx, u, id); return err }},
			{"join", func(u meeting.User, id string) error {
				_, err := e.svc.Join(ctx, u, id, &url.URL{Scheme: "http", Host: "h"})
				return err
			}},
			{"edit", func(u meeting.User, id string) error {
				_, err := e.svc.Edit(ctx, u, id, meeting.Change{Name: &name})
				return err
			}},
			{"add members", func(u meeting.User, id string) error {
				_, err := e.svc.AddMembers(ctx, u, id, []string{"bob"})
				return err
			}},
			{"remove member", func(u meeting.User, id string) error { return e.svc.RemoveMember(ctx, u, id, "nobody") }},
			{"delete", func(u meeting.User, id string) error { return e.svc.Delete(ctx, u, id) }},
		}
		// want: nil allowed, else the error kind; remove member by the
		// creator fails on the unknown user, after the permission check.
		want := map[string]map[string]error{
			"alice": {"remove member": meeting.ErrNotFound},
			"bob":   {"edit": meeting.ErrForbidden, "add members": meeting.ErrForbidden, "remove member": meeting.ErrForbidden, "delete": meeting.ErrForbidden},
			"carol": {"get": meeting.ErrForbidden, "members": meeting.ErrForbidden, "join": meeting.ErrForbidden, "edit": meeting.ErrForbidden,
				"add members": meeting.ErrForbidden, "remove member": meeting.ErrForbidden, "delete": meeting.ErrForbidden},
		}
		wantErr(t, "edit by participant", func() error {
			_, err := e.svc.Edit(ctx, e.users["bob"], m.Identity, meeting.Change{Name: &name})
			return err
		}(),
			meeting.ErrForbidden, "not yours")
		for _, who := range []string{"carol", "bob", "alice"} { // alice last: she deletes
			for _, op := range ops {
				err := op.do(e.users[who], m.Identity)
				if w := want[who][op.name]; (w == nil && err != nil) || (w != nil && !errors.Is(err, w)) {
					t.Errorf("%s %s: got %v, want %v", who, op.name, err, w)
				}
				if err := op.do(e.users[who], unknown); !errors.Is(err, meeting.ErrNotFound) {
					t.Errorf("%s %s of an unknown meeting: got %v, want ErrNotFound", who, op.name, err)
				}
			}
		}
		list, n, err := e.svc.List(ctx, e.users["carol"], meeting.ListOptions{Limit: 10})
		if err != nil || n != 0 || len(list) != 0 {
			t.Errorf("carol lists %d meetings, %v", n, err)
		}
	})
}

func TestCreateRules(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		now := e.now
		begin, end := now.Add(time.Hour), now.Add(2*time.Hour)
		many := make([]string, meeting.MaxInvites+1)
		for i := range many {
			many[i] = fmt.Sprintf("user%d", i)
		}
		for _, c := range []struct {
			name string
			in   meeting.NewMeeting
			kind error
			msg  string
		}{
			{"blank name", meeting.NewMeeting{Name: "  ", BeginAt: begin, EndAt: end}, meeting.ErrInvalid, "must not be empty"},
			{"long name", meeting.NewMeeting{Name: strings.Repeat("名", 201), BeginAt: begin, EndAt: end}, meeting.ErrInvalid, "has 201 characters; at most 200"},
			{"bad UTF-8", meeting.NewMeeting{Name: "a\xffb", BeginAt: begin, EndAt: end}, meeting.ErrInvalid, "UTF-8"},
			{"control", meeting.NewMeeting{Name: "a\u0007b", BeginAt: begin, EndAt: end}, meeting.ErrInvalid, "control characters"},
			{"end before begin", meeting.NewMeeting{Name: "x", BeginAt: begin, EndAt: begin.Add(-time.Minute)}, meeting.ErrInvalid, "end_at must be after begin_at"},
			{"end equals begin", meeting.NewMeeting{Name: "x", BeginAt: begin, EndAt: begin}, meeting.ErrInvalid, "end_at must be after begin_at"},
			{"longer than 24h", meeting.NewMeeting{Name: "x", BeginAt: begin, EndAt: begin.Add(24*time.Hour + time.Millisecond)}, meeting.ErrInvalid, "at most 24h"},
			{"in the past", meeting.NewMeeting{Name: "x", BeginAt: now.Add(-2 * time.Hour), EndAt: now}, meeting.ErrInvalid, "in the past"},
			{"unknown participant", meeting.NewMeeting{Name: "x", BeginAt: begin, EndAt: end, Participants: []string{"bob", "ghost"}}, meeting.ErrNotFound, "ghost"},
			{"too many participants", meeting.NewMeeting{Name: "x", BeginAt: begin, EndAt: end, Participants: many}, meeting.ErrInvalid, "at most 1000 participants per request"},
			{"more than max_participants", meeting.NewMeeting{Name: "x", BeginAt: begin, EndAt: end, MaxParticipants: 1, Participants: []string{"bob", "carol"}},
				meeting.ErrInvalid, "the meeting would have 2 invited participants (the creator not counted) but its max_participants is 1"},
			{"max_participants 1001", meeting.NewMeeting{Name: "x", BeginAt: begin, EndAt: end, MaxParticipants: 1001}, meeting.ErrInvalid, "max_participants is 1001; it must be from 1 to 1000"},
			{"max_participants negative", meeting.NewMeeting{Name: "x", BeginAt: begin, EndAt: end, MaxParticipants: -1}, meeting.ErrInvalid, "from 1 to 1000"},
			{"identity in capitals is lower-cased, then too long", meeting.NewMeeting{Identity: strings.Repeat("A", 65), Name: "x", BeginAt: begin, EndAt: end}, meeting.ErrInvalid, "identity must be 1 to 64 characters"},
			{"identity starting with a dot", meeting.NewMeeting{Identity: ".x", Name: "x", BeginAt: begin, EndAt: end}, meeting.ErrInvalid, "identity must be"},
			{"identity with a slash", meeting.NewMeeting{Identity: "a/b", Name: "x", BeginAt: begin, EndAt: end}, meeting.ErrInvalid, "identity must be"},
		} {
			_, err := e.svc.Create(ctx, e.users["alice"], c.in)
			wantErr(t, c.name, err, c.kind, c.msg)
		}
		if _, n, _ := e.svc.List(ctx, e.users["alice"], meeting.ListOptions{}); n != 0 {
			t.Fatalf("refused creates wrote %d meetings", n)
		}
		if len(e.rooms.scheduled) != 0 {
			t.Fatalf("refused creates scheduled media: %+v", e.rooms.scheduled)
		}

		// Exactly 24h, begun already, participants repeated in any case: fine.
		v, err := e.svc.Create(ctx, e.users["alice"], meeting.NewMeeting{Name: "  all day ", BeginAt: now.Add(-time.Hour),
			EndAt: now.Add(23 * time.Hour), Participants: []string{"bob", "BOB", "bob", "alice"}})
		if err != nil {
			t.Fatal(err)
		}
		if v.Name != "all day" || len(v.Identity) != 36 || v.ID == 0 || v.CreatorID != e.users["alice"].ID || v.Phase != meeting.Starting ||
			v.MaxParticipants != meeting.DefaultMaxParticipants {
			t.Errorf("created %+v", v)
		}
		if len(e.rooms.scheduled) != 1 || e.rooms.scheduled[0].Identity != v.Identity || !e.rooms.scheduled[0].EndAt.Equal(v.EndAt) {
			t.Errorf("Rooms.Schedule calls: %+v", e.rooms.scheduled)
		}
		users, _ := e.svc.Members(ctx, e.users["bob"], v.Identity)
		if len(users) != 2 || users[0].Username != "alice" || users[1].Username != "bob" {
			t.Errorf("members = %+v", users)
		}
		// A Rooms failure after the row is written is logged, not returned.
		e.rooms.set(func(r *rooms) { r.failWith = errors.New("cluster away") })
		if _, err := e.svc.Create(ctx, e.users["alice"], meeting.NewMeeting{Name: "y", BeginAt: begin, EndAt: end}); err != nil {
			t.Errorf("create with Rooms failing: %v", err)
		}
		if !strings.Contains(e.log.String(), "cluster away") {
			t.Errorf("Rooms failure not logged: %q", e.log.String())
		}
	})
}

func TestEdit(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		alice := e.users["alice"]
		begin, end := e.now.Add(time.Hour), e.now.Add(2*time.Hour)
		m := e.meeting(begin, end)
		ptr := func(t time.Time) *time.Time { return &t }
		str := func(s string) *string { return &s }
		for _, c := range []struct {
			name string
			ch   meeting.Change
			kind error
			msg  string
		}{
			{"nothing", meeting.Change{}, meeting.ErrInvalid, "nothing to change"},
			{"max_participants 0", meeting.Change{MaxParticipants: new(int)}, meeting.ErrInvalid, "max_participants is 0; it must be from 1 to 1000"},
			{"blank name", meeting.Change{Name: str(" ")}, meeting.ErrInvalid, "must not be empty"},
			{"end before begin", meeting.Change{EndAt: ptr(begin.Add(-time.Minute))}, meeting.ErrInvalid, "end_at must be after begin_at"},
			{"begin after end", meeting.Change{BeginAt: ptr(end.Add(time.Hour))}, meeting.ErrInvalid, "end_at must be after begin_at"},
			{"too long", meeting.Change{EndAt: ptr(begin.Add(25 * time.Hour))}, meeting.ErrInvalid, "at most 24h"},
			{"into the past", meeting.Change{BeginAt: ptr(e.now.Add(-3 * time.Hour)), EndAt: ptr(e.now.Add(-time.Hour))}, meeting.ErrInvalid, "in the past"},
		} {
			_, err := e.svc.Edit(ctx, alice, m.Identity, c.ch)
			wantErr(t, c.name, err, c.kind, c.msg)
		}
		if got, _ := e.svc.Get(ctx, alice, m.Identity); got.Name != "planning" || !got.BeginAt.Equal(begin) || !got.EndAt.Equal(end) {
			t.Errorf("refused edits changed the meeting: %+v", got.Meeting)
		}
		if len(e.rooms.scheduled) != 1 {
			t.Errorf("refused edits re-planned the media: %d Schedule calls", len(e.rooms.scheduled))
		}

		v, err := e.svc.Edit(ctx, alice, m.Identity, meeting.Change{Name: str(" renamed "), EndAt: ptr(end.Add(time.Hour))})
		if err != nil {
			t.Fatal(err)
		}
		if v.Name != "renamed" || !v.BeginAt.Equal(begin) || !v.EndAt.Equal(end.Add(time.Hour)) {
			t.Errorf("edited %+v", v.Meeting)
		}
		last := e.rooms.scheduled[len(e.rooms.scheduled)-1]
		if len(e.rooms.scheduled) != 2 || last.Identity != m.Identity || !last.EndAt.Equal(end.Add(time.Hour)) {
			t.Errorf("edit did not re-plan the media with the new window: %+v", e.rooms.scheduled)
		}
		// A name-only edit of a meeting that is over is allowed; its times
		// are not checked again.
		e.now = end.Add(2 * time.Hour)
		if v, err := e.svc.Edit(ctx, alice, m.Identity, meeting.Change{Name: str("minutes")}); err != nil || v.Phase != meeting.Ended {
			t.Errorf("renaming an ended meeting: %+v, %v", v, err)
		}
	})
}

func TestDeleteRemovesMedia(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		m := e.meeting(e.now.Add(time.Hour), e.now.Add(2*time.Hour))
		n := e.meeting(e.now.Add(time.Hour), e.now.Add(2*time.Hour))
		if err := e.svc.Delete(ctx, e.users["bob"], m.Identity); !errors.Is(err, meeting.ErrForbidden) {
			t.Fatalf("participant deletes: %v", err)
		}
		if len(e.rooms.removed) != 0 {
			t.Fatalf("refused delete removed media: %v", e.rooms.removed)
		}
		if err := e.svc.Delete(ctx, e.users["alice"], m.Identity); err != nil {
			t.Fatal(err)
		}
		if want := m.Identity + ": the meeting was deleted"; len(e.rooms.removed) != 1 || e.rooms.removed[0] != want {
			t.Errorf("Rooms.Remove calls %q, want [%q]", e.rooms.removed, want)
		}
		if _, err := e.svc.Get(ctx, e.users["alice"], m.Identity); !errors.Is(err, meeting.ErrNotFound) {
			t.Errorf("deleted meeting: %v", err)
		}
		// Rooms failing does not undo the delete: the row is the truth.
		e.rooms.set(func(r *rooms) { r.failWith = errors.New("sfu gone") })
		if err := e.svc.Delete(ctx, e.users["alice"], n.Identity); err != nil {
			t.Errorf("delete with Rooms failing: %v", err)
		}
		if _, err := e.svc.Get(ctx, e.users["alice"], n.Identity); !errors.Is(err, meeting.ErrNotFound) {
			t.Errorf("meeting kept after delete with Rooms failing: %v", err)
		}
		if !strings.Contains(e.log.String(), "sfu gone") {
			t.Errorf("Rooms failure not logged: %q", e.log.String())
		}
	})
}

func TestMembers(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		alice, bob, carol := e.users["alice"], e.users["bob"], e.users["carol"]
		m := e.meeting(e.now.Add(30*time.Second), e.now.Add(time.Hour))
		e.rooms.set(func(r *rooms) { r.status.Ready = true })
		api := &url.URL{Scheme: "http", Host: "h"}
		if _, err := e.svc.AddMembers(ctx, alice, m.Identity, nil); !errors.Is(err, meeting.ErrInvalid) {
			t.Errorf("add nobody: %v", err)
		}
		if _, err := e.svc.AddMembers(ctx, alice, m.Identity, []string{"carol", "ghost"}); !errors.Is(err, meeting.ErrNotFound) {
			t.Errorf("add ghost: %v", err)
		}
		if _, err := e.svc.Get(ctx, carol, m.Identity); !errors.Is(err, meeting.ErrForbidden) {
			t.Errorf("a failed add let carol in: %v", err)
		}
		users, err := e.svc.AddMembers(ctx, alice, m.Identity, []string{"carol", "carol", "bob"})
		if err != nil || len(users) != 3 {
			t.Fatalf("add carol: %+v, %v", users, err)
		}
		if _, err := e.svc.Join(ctx, carol, m.Identity, api); err != nil {
			t.Errorf("carol joins after being added: %v", err)
		}
		wantErr(t, "remove the creator", e.svc.RemoveMember(ctx, alice, m.Identity, "alice"), meeting.ErrInvalid, "the creator of meeting")
		wantErr(t, "remove a stranger", e.svc.RemoveMember(ctx, alice, m.Identity, "nobody"), meeting.ErrNotFound, "no user named nobody")
		if err := e.svc.RemoveMember(ctx, alice, m.Identity, "carol"); err != nil {
			t.Fatal(err)
		}
		wantErr(t, "remove twice", e.svc.RemoveMember(ctx, alice, m.Identity, "carol"), meeting.ErrNotFound, "carol does not take part")
		// The removed participant is refused next time.
		if _, err := e.svc.Join(ctx, carol, m.Identity, api); !errors.Is(err, meeting.ErrForbidden) {
			t.Errorf("removed participant joins: %v", err)
		}
		if _, err := e.svc.Join(ctx, bob, m.Identity, api); err != nil {
			t.Errorf("bob joins: %v", err)
		}
	})
}

// The phase a meeting is shown in, and how many are online, at each point
// of its life.
func TestPhase(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		begin := e.now.Add(time.Hour)
		end := begin.Add(time.Hour)
		m := e.meeting(begin, end)
		for _, c := range []struct {
			name   string
			at     time.Time
			status meeting.RoomStatus
			phase  meeting.Phase
			online int
		}{
			{"long before", e.now, meeting.RoomStatus{Ready: true, Online: 4}, meeting.Scheduled, 0},
			{"just before the lead time", begin.Add(-policy.LeadTime - time.Millisecond), meeting.RoomStatus{}, meeting.Scheduled, 0},
			{"lead time, media coming up", begin.Add(-policy.LeadTime), meeting.RoomStatus{Online: 1}, meeting.Starting, 0},
			{"begun, media not ready", begin.Add(time.Minute), meeting.RoomStatus{}, meeting.Starting, 0},
			{"lead time, media ready", begin.Add(-policy.LeadTime), meeting.RoomStatus{Ready: true}, meeting.Running, 0},
			{"running with people", begin.Add(30 * time.Minute), meeting.RoomStatus{Ready: true, Online: 5}, meeting.Running, 5},
			{"at the end", end, meeting.RoomStatus{Ready: true, Online: 2}, meeting.Ending, 2},
			{"in the grace", end.Add(policy.Grace - time.Millisecond), meeting.RoomStatus{Online: 1}, meeting.Ending, 1},
			{"after the grace", end.Add(policy.Grace), meeting.RoomStatus{Ready: true, Online: 9}, meeting.Ended, 0},
		} {
			e.now = c.at
			e.rooms.set(func(r *rooms) { r.status = c.status })
			d, err := e.svc.Get(ctx, e.users["bob"], m.Identity)
			if err != nil {
				t.Fatal(err)
			}
			list, _, err := e.svc.List(ctx, e.users["bob"], meeting.ListOptions{Limit: 10})
			if err != nil || len(list) != 1 {
				t.Fatalf("list: %+v, %v", list, err)
			}
			for where, v := range map[string]meeting.View{"get": d.View, "list": list[0]} {
				if v.Phase != c.phase || v.ParticipantsOnline != c.online {
					t.Errorf("%s, %s: phase %s online %d; want %s and %d", c.name, where, v.Phase, v.ParticipantsOnline, c.phase, c.online)
				}
			}
		}
	})
}

func TestJoin(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		bob := e.users["bob"]
		begin := e.now.Add(time.Hour)
		end := begin.Add(time.Hour)
		m := e.meeting(begin, end)
		api := &url.URL{Scheme: "http", Host: "meet.example:8080"}
		notReady := fmt.Errorf("sfu pod pending: %w", meeting.ErrMediaNotReady)

		for _, c := range []struct {
			name    string
			at      time.Time
			ready   bool
			roomErr error
			kind    error
			phase   meeting.Phase
		}{
			{"scheduled", begin.Add(-policy.LeadTime - time.Second), true, nil, meeting.ErrNotOpen, ""},
			{"opening, media not ready", begin.Add(-policy.LeadTime), false, notReady, meeting.ErrMediaNotReady, ""},
			{"opening, media ready", begin.Add(-policy.LeadTime), true, nil, nil, meeting.Running},
			{"running", begin.Add(10 * time.Minute), true, nil, nil, meeting.Running},
			{"ending still admits", end.Add(policy.Grace - time.Second), true, nil, nil, meeting.Ending},
			{"ended", end.Add(policy.Grace), true, nil, meeting.ErrEnded, ""},
		} {
			e.now = c.at
			e.rooms.set(func(r *rooms) { r.roomErr, r.status = c.roomErr, meeting.RoomStatus{Ready: c.ready} })
			a, err := e.svc.Join(ctx, bob, m.Identity, api)
			if c.kind != nil {
				if !errors.Is(err, c.kind) {
					t.Errorf("%s: got %v, want %v", c.name, err, c.kind)
				}
				continue
			}
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
				continue
			}
			if a.Phase != c.phase || a.Meeting.Identity != m.Identity || a.SignalURL != "ws://meet.example:8080/ws" {
				t.Errorf("%s: admission %+v", c.name, a)
			}
		}

		// Before the room opens: when it begins, for the reply's data.
		e.now = begin.Add(-time.Hour)
		_, err := e.svc.Join(ctx, bob, m.Identity, api)
		var notOpen *meeting.NotOpenError
		if !errors.As(err, &notOpen) || !notOpen.BeginAt.Equal(begin) || !notOpen.OpensAt.Equal(begin.Add(-policy.LeadTime)) ||
			!strings.Contains(err.Error(), begin.Format(time.RFC3339)) {
			t.Errorf("early join: %v (%+v)", err, notOpen)
		}
		// After the grace: 410's error says when it ended.
		e.now = end.Add(time.Hour)
		if _, err := e.svc.Join(ctx, bob, m.Identity, api); !errors.Is(err, meeting.ErrEnded) || !strings.Contains(err.Error(), end.Format(time.RFC3339)) {
			t.Errorf("late join: %v", err)
		}
	})
}

// What a join hands out: a join token for the room naming the user, and
// TURN credentials that last until the media goes (never more than 24h).
func TestJoinCredentials(t *testing.T) {
	e := newEnv(t, "sqlite")
	bob := e.users["bob"]
	key := e.rooms.room.TokenKey
	begin := e.now.Add(time.Hour)
	m := e.meeting(begin, begin.Add(time.Hour))
	e.now = begin.Add(5 * time.Minute)

	a, err := e.svc.Join(ctx, bob, m.Identity, &url.URL{Scheme: "https", Host: "meet.example"})
	if err != nil {
		t.Fatal(err)
	}
	claims, err := token.Verify(key, a.Token, m.Identity, e.now)
	if err != nil {
		t.Fatalf("join token does not verify: %v", err)
	}
	if claims.User != strconv.FormatUint(bob.ID, 10) || claims.Name != "bob" || claims.Room != m.Identity {
		t.Errorf("claims %+v", claims)
	}
	if !a.ExpiresAt.Equal(e.now.Add(meeting.DefaultJoinTokenTTL)) || !claims.ExpiresAt.Equal(a.ExpiresAt) {
		t.Errorf("token expires %v (claims %v), want now + 2m", a.ExpiresAt, claims.ExpiresAt)
	}
	if _, err := token.Verify(key, a.Token, m.Identity, e.now.Add(meeting.DefaultJoinTokenTTL+time.Second)); !errors.Is(err, token.ErrExpired) {
		t.Errorf("token after its TTL: %v", err)
	}
	if _, err := token.Verify(key, a.Token, "00000000-0000-4000-8000-000000000000", e.now); !errors.Is(err, token.ErrWrongRoom) {
		t.Errorf("token for another room: %v", err)
	}
	if a.SignalURL != "wss://meet.example/ws" {
		t.Errorf("signal URL %q, want wss://meet.example/ws", a.SignalURL)
	}
	if len(a.ICEServers) != 1 || len(a.ICEServers[0].URLs) != 2 || a.ICEServers[0].URLs[0] != e.rooms.room.TURNURIs[0] {
		t.Fatalf("ICE servers %+v", a.ICEServers)
	}
	ice := a.ICEServers[0]
	expiry, user, _ := strings.Cut(ice.Username, ":")
	exp, _ := strconv.ParseInt(expiry, 10, 64)
	if user != strconv.FormatUint(bob.ID, 10) || ice.Credential != token.TURNPassword(e.rooms.room.TURNSecret, ice.Username) {
		t.Errorf("TURN credentials %+v", ice)
	}
	if removeAt := m.EndAt.Add(policy.Grace); exp != removeAt.Unix() {
		t.Errorf("TURN credentials expire at %v, want end + grace %v", time.Unix(exp, 0).UTC(), removeAt)
	}

	// Two devices: a second join gets its own token.
	e.now = e.now.Add(time.Second)
	b, err := e.svc.Join(ctx, bob, m.Identity, &url.URL{Scheme: "http", Host: "x"})
	if err != nil || b.Token == a.Token {
		t.Errorf("second join: %v (same token: %v)", err, b.Token == a.Token)
	}

	// A 24h meeting joined as it opens: TURN credentials last 24h, not
	// to the end of the grace.
	long := e.meeting(e.now.Add(time.Hour), e.now.Add(25*time.Hour))
	e.now = long.BeginAt.Add(-policy.LeadTime)
	c, err := e.svc.Join(ctx, bob, long.Identity, &url.URL{Scheme: "http", Host: "x"})
	if err != nil {
		t.Fatal(err)
	}
	expiry, _, _ = strings.Cut(c.ICEServers[0].Username, ":")
	if exp, _ := strconv.ParseInt(expiry, 10, 64); exp != e.now.Add(24*time.Hour).Unix() {
		t.Errorf("TURN credentials of a long meeting expire at %v, want now + 24h", time.Unix(exp, 0).UTC())
	}

	// Absolute signalling URLs are given as they are; no TURN, no ICE servers.
	e.rooms.set(func(r *rooms) { r.room.SignalURL, r.room.TURNURIs = "wss://sfu-1.example/rooms/x/ws", nil })
	d, err := e.svc.Join(ctx, bob, long.Identity, &url.URL{Scheme: "http", Host: "x"})
	if err != nil || d.SignalURL != "wss://sfu-1.example/rooms/x/ws" || d.ICEServers == nil || len(d.ICEServers) != 0 {
		t.Errorf("absolute signal URL, no TURN: %+v, %v", d, err)
	}
}

// On start, every meeting whose media runs or is still to come is told to
// Rooms, and none that ended more than the grace ago.
func TestScheduleAll(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		t0 := e.now
		old := e.meeting(t0, t0.Add(time.Hour))
		e.now = t0.Add(3*time.Hour - 2*time.Minute)
		ending := e.meeting(e.now.Add(-time.Hour), e.now.Add(time.Minute))
		e.now = t0.Add(3 * time.Hour) // ending ended a minute ago (grace 2m), old two hours ago
		running := e.meeting(e.now.Add(-time.Hour), e.now.Add(time.Hour))
		later := e.meeting(e.now.Add(time.Hour), e.now.Add(2*time.Hour))
		e.rooms.set(func(r *rooms) { r.scheduled = nil })

		n, err := e.svc.ScheduleAll(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]bool{}
		for _, m := range e.rooms.scheduled {
			got[m.Identity] = true
		}
		if n != 3 || len(got) != 3 || !got[running.Identity] || !got[ending.Identity] || !got[later.Identity] || got[old.Identity] {
			t.Fatalf("ScheduleAll = %d, scheduled %v; want running, ending and later, not old", n, got)
		}
	})
}

func TestIdentityAndLimits(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		alice := e.users["alice"]
		for _, n := range []string{"dave", "erin", "frank"} {
			a, err := e.store.CreateUser(ctx, n, "hash")
			if err != nil {
				t.Fatal(err)
			}
			e.users[n] = a.User()
		}
		begin, end := e.now.Add(time.Hour), e.now.Add(2*time.Hour)

		// A chosen identity is lower-cased; 64 characters fit; a taken one is a conflict.
		v, err := e.svc.Create(ctx, alice, meeting.NewMeeting{Identity: "Team.Standup_1", Name: "standup", BeginAt: begin, EndAt: end})
		if err != nil || v.Identity != "team.standup_1" {
			t.Fatalf("create with identity: %+v, %v", v, err)
		}
		if _, err := e.svc.Get(ctx, alice, "team.standup_1"); err != nil {
			t.Errorf("get by chosen identity: %v", err)
		}
		long := strings.Repeat("a", meeting.MaxIdentityLen)
		if v, err := e.svc.Create(ctx, alice, meeting.NewMeeting{Identity: long, Name: strings.Repeat("名", meeting.MaxNameRunes), BeginAt: begin, EndAt: end}); err != nil ||
			v.Identity != long || len([]rune(v.Name)) != meeting.MaxNameRunes {
			t.Errorf("64-character identity, 200-character name: %+v, %v", v, err)
		}
		_, err = e.svc.Create(ctx, alice, meeting.NewMeeting{Identity: "TEAM.standup_1", Name: "again", BeginAt: begin, EndAt: end})
		wantErr(t, "taken identity", err, meeting.ErrConflict, "team.standup_1")

		// Invited participants (the creator not counted) up to max_participants.
		m, err := e.svc.Create(ctx, alice, meeting.NewMeeting{Name: "small", BeginAt: begin, EndAt: end, MaxParticipants: 2,
			Participants: []string{"bob", "carol", "alice"}})
		if err != nil || m.MaxParticipants != 2 {
			t.Fatalf("create with 2 of 2: %+v, %v", m, err)
		}
		_, err = e.svc.AddMembers(ctx, alice, m.Identity, []string{"dave"})
		wantErr(t, "invite past the limit", err, meeting.ErrInvalid, "would have 3 invited participants (the creator not counted) but its max_participants is 2")
		var tooMany *meeting.TooManyParticipantsError
		if !errors.As(err, &tooMany) || tooMany.Invited != 3 || tooMany.Max != 2 {
			t.Errorf("invite past the limit: %#v", err)
		}
		if users, _ := e.svc.Members(ctx, alice, m.Identity); len(users) != 3 {
			t.Errorf("a refused invite changed the members: %+v", users)
		}
		if _, err := e.svc.AddMembers(ctx, alice, m.Identity, []string{"bob", "alice"}); err != nil {
			t.Errorf("inviting those already there: %v", err)
		}
		one := 1
		_, err = e.svc.Edit(ctx, alice, m.Identity, meeting.Change{MaxParticipants: &one})
		wantErr(t, "lower below the invited", err, meeting.ErrInvalid, "would have 2 invited participants (the creator not counted) but its max_participants is 1")
		if got, _ := e.svc.Get(ctx, alice, m.Identity); got.MaxParticipants != 2 {
			t.Errorf("a refused edit changed max_participants to %d", got.MaxParticipants)
		}
		four := 4
		v, err = e.svc.Edit(ctx, alice, m.Identity, meeting.Change{MaxParticipants: &four})
		if err != nil || v.MaxParticipants != 4 {
			t.Fatalf("raise to 4: %+v, %v", v, err)
		}
		if last := e.rooms.scheduled[len(e.rooms.scheduled)-1]; last.Identity != m.Identity || last.MaxParticipants != 4 {
			t.Errorf("Rooms.Schedule after the edit got %+v", last)
		}
		name := "renamed"
		if v, err := e.svc.Edit(ctx, alice, m.Identity, meeting.Change{Name: &name}); err != nil || v.MaxParticipants != 4 {
			t.Errorf("a rename changed max_participants: %+v, %v", v, err)
		}

		// Two slots left, three concurrent invitations of one user each:
		// exactly two pass.
		var wg sync.WaitGroup
		errs := make(chan error, 3)
		for _, n := range []string{"dave", "erin", "frank"} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := e.svc.AddMembers(ctx, alice, m.Identity, []string{n})
				errs <- err
			}()
		}
		wg.Wait()
		close(errs)
		var passed, refused int
		for err := range errs {
			switch {
			case err == nil:
				passed++
			case errors.As(err, &tooMany):
				refused++
			default:
				t.Errorf("concurrent invite: %v", err)
			}
		}
		users, _ := e.svc.Members(ctx, alice, m.Identity)
		if passed != 2 || refused != 1 || len(users) != 5 {
			t.Errorf("concurrent invites: %d passed, %d refused, %d members (want 2, 1 and 5 with the creator)", passed, refused, len(users))
		}
	})
}
