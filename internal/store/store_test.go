package store_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"meeting.dev/meeting/internal/meeting"
	"meeting.dev/meeting/internal/store"
	"meeting.dev/meeting/internal/store/storetest"
)

var ctx = context.Background()

func forEachDialect(t *testing.T, f func(t *testing.T, s *store.Store)) {
	for _, d := range storetest.Dialects {
		t.Run(d, func(t *testing.T) {
			t.Parallel()
			f(t, storetest.Open(t, d))
		})
	}
}

func mustUser(t *testing.T, s *store.Store, name string) meeting.Account {
	t.Helper()
	u, err := s.CreateUser(ctx, name, "$2a$10$"+strings.Repeat("x", 53))
	if err != nil {
		t.Fatalf("create user %s: %v", name, err)
	}
	return u
}

func mustMeeting(t *testing.T, s *store.Store, creator uint64, name string, begin time.Time, participants ...uint64) meeting.Meeting {
	t.Helper()
	m := meeting.Meeting{Identity: fmt.Sprintf("00000000-0000-4000-8000-%012d", time.Now().UnixNano()%1e12),
		Name: name, BeginAt: begin, EndAt: begin.Add(time.Hour), CreatorID: creator}
	if err := s.CreateMeeting(ctx, &m, participants); err != nil {
		t.Fatalf("create meeting: %v", err)
	}
	return m
}

func TestUsers(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		u := mustUser(t, s, "alice")
		if _, err := s.CreateUser(ctx, "alice", "h"); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("duplicate username: got %v, want ErrConflict", err)
		}
		got, err := s.UserByName(ctx, "alice")
		if err != nil || got.ID != u.ID {
			t.Fatalf("UserByName = %+v, %v", got, err)
		}
		if _, err := s.UserByName(ctx, "nobody"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("unknown user: got %v, want ErrNotFound", err)
		}
		long := "$argon2id$v=19$m=65536,t=3,p=4$" + strings.Repeat("a", 150)
		if err := s.SetPassword(ctx, u.ID, long); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.UserByID(ctx, u.ID); got.PasswordHash != long {
			t.Fatalf("password not stored whole: %d bytes", len(got.PasswordHash))
		}
		if err := s.SetPassword(ctx, 999999, "x"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("SetPassword of unknown user: %v", err)
		}
	})
}

// Usernames and identities compare without case on every dialect.
func TestNamesCompareWithoutCase(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		u := mustUser(t, s, "Alice")
		if u.Username != "alice" {
			t.Errorf("username stored as %q, want lower case", u.Username)
		}
		for _, n := range []string{"alice", "ALICE", "aLiCe"} {
			if got, err := s.UserByName(ctx, n); err != nil || got.ID != u.ID {
				t.Errorf("UserByName(%q) = %+v, %v", n, got, err)
			}
		}
		if ids, err := s.UserIDs(ctx, []string{"ALICE", "alice"}); err != nil || len(ids) != 2 || ids[0] != u.ID || ids[1] != u.ID {
			t.Errorf("UserIDs = %v, %v", ids, err)
		}
		if _, err := s.CreateUser(ctx, "ALICE", "h"); !errors.Is(err, store.ErrConflict) {
			t.Errorf("ALICE next to alice: %v, want ErrConflict", err)
		}
		m := meeting.Meeting{Identity: "5F0C3C5E-6F55-4A39-9B34-0D6F0A1D2B11", Name: "x", BeginAt: time.Now().UTC().Truncate(time.Second),
			EndAt: time.Now().UTC().Truncate(time.Second).Add(time.Hour), CreatorID: u.ID}
		if err := s.CreateMeeting(ctx, &m, nil); err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{"5f0c3c5e-6f55-4a39-9b34-0d6f0a1d2b11", "5F0C3C5E-6F55-4A39-9B34-0D6F0A1D2B11"} {
			if got, err := s.Meeting(ctx, id); err != nil || got.Identity != "5f0c3c5e-6f55-4a39-9b34-0d6f0a1d2b11" {
				t.Errorf("Meeting(%q) = %+v, %v", id, got, err)
			}
		}
	})
}

// A password change increments the token generation, in the same UPDATE as
// the hash; the re-hash of a login (SetPassword) does not.
func TestTokenGeneration(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		u := mustUser(t, s, "alice")
		if u.TokenGeneration != 0 {
			t.Fatalf("new user's generation = %d, want 0", u.TokenGeneration)
		}
		if err := s.SetPassword(ctx, u.ID, "rehash"); err != nil {
			t.Fatal(err)
		}
		for want := uint64(1); want <= 2; want++ {
			gen, err := s.ChangePassword(ctx, u.ID, fmt.Sprintf("hash-%d", want))
			if err != nil || gen != want {
				t.Fatalf("ChangePassword = %d, %v; want %d", gen, err, want)
			}
			got, err := s.UserByID(ctx, u.ID)
			if err != nil || got.TokenGeneration != want || got.PasswordHash != fmt.Sprintf("hash-%d", want) {
				t.Fatalf("after change %d: %+v, %v", want, got, err)
			}
		}
		if _, err := s.ChangePassword(ctx, 999999, "x"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("ChangePassword of unknown user: %v", err)
		}
	})
}

// The store applies no user scoping: it finds, changes and deletes any
// meeting, and answers who takes part; the service decides who may.
func TestMeetingRows(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		alice, bob, carol := mustUser(t, s, "alice"), mustUser(t, s, "bob"), mustUser(t, s, "carol")
		begin := time.Now().UTC().Add(time.Hour).Truncate(time.Millisecond)
		m := mustMeeting(t, s, alice.ID, "planning", begin, bob.ID, alice.ID)
		if m.ID == 0 || m.CreatedAt.IsZero() || m.UpdatedAt.IsZero() {
			t.Fatalf("CreateMeeting did not fill in ID and times: %+v", m)
		}

		got, err := s.Meeting(ctx, m.Identity)
		if err != nil || got.ID != m.ID || got.Name != "planning" || !got.BeginAt.Equal(begin) || got.CreatorID != alice.ID {
			t.Errorf("Meeting = %+v, %v", got, err)
		}
		if _, err := s.Meeting(ctx, "00000000-0000-4000-8000-000000000000"); !errors.Is(err, store.ErrNotFound) || !errors.Is(err, meeting.ErrNotFound) {
			t.Errorf("unknown: got %v, want ErrNotFound", err)
		}
		for _, c := range []struct {
			who  string
			id   uint64
			want bool
		}{{"creator (no row)", alice.ID, false}, {"participant", bob.ID, true}, {"stranger", carol.ID, false}} {
			if ok, err := s.IsParticipant(ctx, m.ID, c.id); err != nil || ok != c.want {
				t.Errorf("IsParticipant(%s) = %v, %v; want %v", c.who, ok, err, c.want)
			}
		}
		users, err := s.Participants(ctx, m)
		if err != nil || len(users) != 2 || users[0].ID != alice.ID || users[1].ID != bob.ID || users[0].CreatedAt.IsZero() {
			t.Fatalf("participants = %+v, %v; want alice (creator, once) then bob", users, err)
		}
		if _, err := s.UserIDs(ctx, []string{"carol", "ghost"}); !errors.Is(err, store.ErrNotFound) || !strings.Contains(err.Error(), "ghost") {
			t.Errorf("unknown username: got %v, want ErrNotFound naming ghost", err)
		}
		ids, err := s.UserIDs(ctx, []string{"carol", "bob"})
		if err != nil || len(ids) != 2 || ids[0] != carol.ID || ids[1] != bob.ID {
			t.Fatalf("UserIDs = %v, %v", ids, err)
		}
		if err := s.AddParticipants(ctx, m.ID, append(ids, alice.ID)); err != nil {
			t.Fatalf("add carol (bob again, the creator): %v", err)
		}
		if users, _ := s.Participants(ctx, m); len(users) != 3 {
			t.Errorf("participants after add = %d, want 3", len(users))
		}
		if err := s.AddParticipants(ctx, 999999, ids); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("add to unknown meeting: got %v, want ErrNotFound", err)
		}
		if err := s.RemoveParticipant(ctx, m.ID, bob.ID); err != nil {
			t.Fatal(err)
		}
		if ok, _ := s.IsParticipant(ctx, m.ID, bob.ID); ok {
			t.Error("bob still takes part after removal")
		}
		if err := s.RemoveParticipant(ctx, m.ID, bob.ID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("remove twice: got %v, want ErrNotFound", err)
		}
		if err := s.RemoveParticipant(ctx, m.ID, alice.ID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("remove the creator (no row): got %v, want ErrNotFound", err)
		}
		if err := s.AddParticipants(ctx, m.ID, []uint64{bob.ID}); err != nil {
			t.Errorf("add bob back after removal: %v", err)
		}

		sentinel := errors.New("refused")
		if _, err := s.UpdateMeeting(ctx, m.Identity, func(m *meeting.Meeting) error { m.Name = "x"; return sentinel }); !errors.Is(err, sentinel) {
			t.Errorf("refusing change: got %v", err)
		}
		if got, _ := s.Meeting(ctx, m.Identity); got.Name != "planning" {
			t.Errorf("a refused change was saved: name %q", got.Name)
		}
		if _, err := s.UpdateMeeting(ctx, "00000000-0000-4000-8000-000000000000", func(*meeting.Meeting) error { return nil }); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("update unknown: got %v, want ErrNotFound", err)
		}
		saved, err := s.UpdateMeeting(ctx, m.Identity, func(m *meeting.Meeting) error {
			m.EndAt = m.EndAt.Add(time.Hour)
			m.CreatorID = carol.ID // not a column an update writes
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		got, _ = s.Meeting(ctx, m.Identity)
		if !got.EndAt.Equal(begin.Add(2*time.Hour)) || !got.BeginAt.Equal(begin) || got.Name != "planning" || !saved.EndAt.Equal(got.EndAt) || got.CreatorID != alice.ID {
			t.Errorf("after extending: %+v", got)
		}

		if err := s.DeleteMeeting(ctx, m.Identity); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Meeting(ctx, m.Identity); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("deleted meeting: got %v, want ErrNotFound", err)
		}
		if err := s.DeleteMeeting(ctx, m.Identity); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("delete twice: got %v, want ErrNotFound", err)
		}
		if list, n, _ := s.ListMeetings(ctx, bob.ID, meeting.ListOptions{Limit: 10}); n != 0 || len(list) != 0 {
			t.Errorf("deleted meeting still listed for bob: %d", n)
		}
	})
}

func TestMeetingsEndingAfter(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		alice := mustUser(t, s, "alice")
		now := time.Now().UTC().Truncate(time.Millisecond)
		past := mustMeeting(t, s, alice.ID, "past", now.Add(-3*time.Hour))          // ended 2h ago
		running := mustMeeting(t, s, alice.ID, "running", now.Add(-30*time.Minute)) // ends in 30m
		later := mustMeeting(t, s, alice.ID, "later", now.Add(time.Hour))
		gone := mustMeeting(t, s, alice.ID, "gone", now.Add(2*time.Hour))
		if err := s.DeleteMeeting(ctx, gone.Identity); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			after time.Time
			want  []string
		}{
			{now, []string{running.Identity, later.Identity}},
			{now.Add(-2 * time.Hour), []string{running.Identity, later.Identity}},
			{now.Add(-2*time.Hour - time.Millisecond), []string{past.Identity, running.Identity, later.Identity}},
			{now.Add(2 * time.Hour), nil},
		} {
			list, err := s.MeetingsEndingAfter(ctx, c.after)
			var got []string
			for _, m := range list {
				got = append(got, m.Identity)
			}
			if err != nil || fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Errorf("MeetingsEndingAfter(now%+v) = %v, %v; want %v", c.after.Sub(now), got, err, c.want)
			}
		}
	})
}

func TestListMeetings(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		alice, bob := mustUser(t, s, "alice"), mustUser(t, s, "bob")
		base := time.Now().UTC().Add(time.Hour).Truncate(time.Millisecond)
		var latest meeting.Meeting
		for i := 0; i < 5; i++ {
			latest = mustMeeting(t, s, alice.ID, fmt.Sprintf("alice %d", i), base.Add(time.Duration(i)*time.Hour))
		}
		time.Sleep(20 * time.Millisecond) // so that its updated_at is not its created_at
		if _, err := s.UpdateMeeting(ctx, latest.Identity, func(m *meeting.Meeting) error { m.MaxParticipants = 7; return nil }); err != nil {
			t.Fatalf("update: %v", err)
		}
		mustMeeting(t, s, bob.ID, "bob's 100% party_", base, alice.ID)
		mustMeeting(t, s, bob.ID, "bob alone", base)

		list, n, err := s.ListMeetings(ctx, alice.ID, meeting.ListOptions{Limit: 2})
		if err != nil || n != 6 || len(list) != 2 {
			t.Fatalf("alice page 1: %d items, count %d, %v; want 2 of 6", len(list), n, err)
		}
		if list[0].Name != "alice 4" || list[1].Name != "alice 3" {
			t.Errorf("order: %q, %q; want latest beginning first", list[0].Name, list[1].Name)
		}
		// Every field as Meeting reads it (the list scans its columns by hand).
		for _, got := range list {
			want, err := s.Meeting(ctx, got.Identity)
			if err != nil {
				t.Fatalf("meeting %s: %v", got.Identity, err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("listed %+v\nstored %+v", got, want)
			}
		}
		list, _, _ = s.ListMeetings(ctx, alice.ID, meeting.ListOptions{Offset: 4, Limit: 10})
		if len(list) != 2 {
			t.Errorf("last page has %d items, want 2", len(list))
		}
		list, n, _ = s.ListMeetings(ctx, alice.ID, meeting.ListOptions{Offset: 100, Limit: 10})
		if len(list) != 0 || n != 6 {
			t.Errorf("past the end: %d items, count %d", len(list), n)
		}
		for kw, want := range map[string]int64{"100%": 1, "_": 1, "alice": 5, "ALICE": 5, "zzz": 0, "%": 1} {
			_, n, err := s.ListMeetings(ctx, alice.ID, meeting.ListOptions{Keyword: kw, Limit: 10})
			if err != nil || n != want {
				t.Errorf("keyword %q: count %d, %v; want %d", kw, n, err, want)
			}
		}
		if _, n, _ := s.ListMeetings(ctx, bob.ID, meeting.ListOptions{Limit: 10}); n != 2 {
			t.Errorf("bob sees %d meetings, want his 2", n)
		}
	})
}

func TestConcurrentEditsLoseNothing(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		alice := mustUser(t, s, "alice")
		begin := time.Now().UTC().Add(time.Hour).Truncate(time.Millisecond)
		m := mustMeeting(t, s, alice.ID, "race", begin)
		// Even editors move the end 2 minutes later, odd ones the start 1
		// minute later, each from the row it read. Every edit that reports
		// success must be in the final row: none may overwrite another.
		var wg sync.WaitGroup
		var mu sync.Mutex
		moved := map[bool]int{}
		for i := 0; i < 20; i++ {
			wg.Add(1)
			go func(end bool) {
				defer wg.Done()
				_, err := s.UpdateMeeting(ctx, m.Identity, func(m *meeting.Meeting) error {
					if end {
						m.EndAt = m.EndAt.Add(2 * time.Minute)
					} else {
						m.BeginAt = m.BeginAt.Add(time.Minute)
					}
					return nil
				})
				if err != nil {
					t.Logf("edit gave up: %v", err)
					return
				}
				mu.Lock()
				moved[end]++
				mu.Unlock()
			}(i%2 == 0)
		}
		wg.Wait()
		got, _ := s.Meeting(ctx, m.Identity)
		wantBegin := begin.Add(time.Duration(moved[false]) * time.Minute)
		wantEnd := begin.Add(time.Hour + time.Duration(moved[true])*2*time.Minute)
		if !got.BeginAt.Equal(wantBegin) || !got.EndAt.Equal(wantEnd) {
			t.Errorf("lost updates: begin %v end %v, want %v and %v (%d end and %d start edits succeeded)",
				got.BeginAt, got.EndAt, wantBegin, wantEnd, moved[true], moved[false])
		}
		if moved[true]+moved[false] < 10 {
			t.Errorf("only %d of 20 edits succeeded", moved[true]+moved[false])
		}
	})
}

func TestMigrationIsIdempotent(t *testing.T) {
	url := storetest.NewDatabaseURL(t)
	for i := 0; i < 3; i++ {
		s, err := store.Open(ctx, url, "", nil)
		if err != nil {
			t.Fatalf("open #%d: %v", i+1, err)
		}
		if i == 0 {
			mustUser(t, s, "keep")
		}
		if _, err := s.UserByName(ctx, "keep"); err != nil {
			t.Fatalf("after open #%d: %v", i+1, err)
		}
		s.Close()
	}
}

func TestSeedDatabaseUpgrades(t *testing.T) {
	url := storetest.NewDatabaseURL(t)
	storetest.Exec(t, url, storetest.SeedStatements()...)
	s, err := store.Open(ctx, url, "", nil)
	if err != nil {
		t.Fatalf("migrating the seed's database: %v", err)
	}
	defer s.Close()
	root, err := s.UserByName(ctx, "root")
	if err != nil || root.ID != 1 || root.PasswordHash != "8017d0408f41b75489701e3fb1c3e773" || root.TokenGeneration != 0 {
		t.Fatalf("seed user after migration: %+v, %v", root, err)
	}
	m, err := s.Meeting(ctx, "5f0c3c5e-6f55-4a39-9b34-0d6f0a1d2b11")
	if err != nil || m.Name != "seed standup" || m.BeginAt.Format(time.RFC3339) != "2030-01-02T09:00:00Z" {
		t.Fatalf("seed meeting after migration: %+v, %v", m, err)
	}
	// The password column now holds a modern hash whole.
	bcryptHash := "$2a$10$" + strings.Repeat("y", 53)
	if err := s.SetPassword(ctx, root.ID, bcryptHash); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.UserByID(ctx, root.ID); got.PasswordHash != bcryptHash {
		t.Fatalf("password truncated to %d bytes", len(got.PasswordHash))
	}
	// Members can be added to the seed's room.
	mustUser(t, s, "guest")
	guest, err := s.UserIDs(ctx, []string{"guest"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.AddParticipants(ctx, m.ID, guest); err != nil {
		t.Fatal(err)
	}
	// The seed's room got the default limit, and the widened columns take
	// what a Meeting resource allows: a 200-character name, a 64-character
	// identity.
	if m.MaxParticipants != 50 {
		t.Errorf("seed meeting's max_participants = %d, want 50", m.MaxParticipants)
	}
	wide := meeting.Meeting{Identity: strings.Repeat("x", 64), Name: strings.Repeat("名", 200),
		BeginAt: m.BeginAt, EndAt: m.EndAt, CreatorID: root.ID}
	if err := s.CreateMeeting(ctx, &wide, nil); err != nil {
		t.Fatalf("64-character identity and 200-character name in the seed's table: %v", err)
	}
	if got, err := s.Meeting(ctx, wide.Identity); err != nil || got.Name != wide.Name || got.MaxParticipants != 50 {
		t.Errorf("read back: %q (%d), %v", got.Name, got.MaxParticipants, err)
	}
	if _, err := s.UpdateMeeting(ctx, m.Identity, func(m *meeting.Meeting) error {
		m.Name = strings.Repeat("é", 200)
		return nil
	}); err != nil {
		t.Fatalf("200-character name on the seed's row: %v", err)
	}
	if got, _ := s.Meeting(ctx, m.Identity); got.Name != strings.Repeat("é", 200) {
		t.Errorf("seed row's name after the edit: %d characters", len([]rune(got.Name)))
	}
	// The columns are as wide as the model says, the identity still unique.
	cols, err := s.DB().Migrator().ColumnTypes(&store.Meeting{})
	if err != nil {
		t.Fatal(err)
	}
	sizes := map[string]int64{}
	for _, c := range cols {
		n, _ := c.Length()
		sizes[c.Name()] = n
	}
	if sizes["identity"] != 64 || sizes["name"] != 200 {
		t.Errorf("column sizes after migration: identity %d, name %d; want 64 and 200", sizes["identity"], sizes["name"])
	}
	again := wide
	if err := s.CreateMeeting(ctx, &again, nil); !errors.Is(err, store.ErrConflict) {
		t.Errorf("identity still unique after the migration: got %v, want ErrConflict", err)
	}
	// Opening again changes nothing.
	s2, err := store.Open(ctx, url, "", nil)
	if err != nil {
		t.Fatalf("second migration: %v", err)
	}
	s2.Close()
}

// meeting.db holds password hashes: it is created 0600, and an existing
// file (and its WAL) is made 0600.
func TestSQLiteFileIsPrivate(t *testing.T) {
	dir := t.TempDir()
	mode := func(p string) os.FileMode {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Mode().Perm()
	}
	s, err := store.Open(ctx, "", dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	mustUser(t, s, "alice")
	db := filepath.Join(dir, "meeting.db")
	for _, p := range []string{db, db + "-wal", db + "-shm"} {
		if _, err := os.Stat(p); err == nil && mode(p) != 0o600 {
			t.Errorf("%s has mode %v, want 0600", filepath.Base(p), mode(p))
		}
	}
	s.Close()
	for _, p := range []string{db, db + "-wal", db + "-shm"} {
		_ = os.Chmod(p, 0o644)
	}
	s, err = store.Open(ctx, "", dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if mode(db) != 0o600 {
		t.Errorf("an existing 0644 meeting.db was left %v", mode(db))
	}
}

// A seed database whose room has more participants than the default limit
// migrates with the limit raised to their number, so the row stays valid.
func TestSeedRoomWithManyParticipantsKeepsThem(t *testing.T) {
	url := storetest.NewDatabaseURL(t)
	stmts := storetest.SeedStatements()
	for i := 2; i <= 61; i++ {
		stmts = append(stmts,
			fmt.Sprintf("INSERT INTO user_basic(id, username, password) VALUES (%d, 'user%d', '8017d0408f41b75489701e3fb1c3e773')", i, i),
			fmt.Sprintf("INSERT INTO room_user(rid, uid) VALUES (1, %d)", i))
	}
	storetest.Exec(t, url, stmts...)
	s, err := store.Open(ctx, url, "", nil)
	if err != nil {
		t.Fatalf("migrating the seed's database: %v", err)
	}
	defer s.Close()
	m, err := s.Meeting(ctx, "5f0c3c5e-6f55-4a39-9b34-0d6f0a1d2b11")
	if err != nil || m.MaxParticipants != 60 {
		t.Fatalf("seed meeting with 60 participants: max_participants %d, %v; want 60", m.MaxParticipants, err)
	}
	var tooMany *meeting.TooManyParticipantsError
	if err := s.AddParticipants(ctx, m.ID, []uint64{1}); err != nil {
		t.Errorf("adding the creator (no row): %v", err)
	}
	mustUser(t, s, "one-more")
	ids, _ := s.UserIDs(ctx, []string{"one-more"})
	if err := s.AddParticipants(ctx, m.ID, ids); !errors.As(err, &tooMany) || tooMany.Invited != 61 || tooMany.Max != 60 {
		t.Errorf("61st participant: %v", err)
	}
}

// oldSQLiteSchema is room_basic as the store created it on SQLite before
// identities of 64 and names of 200 characters, and before max_participants.
var oldSQLiteSchema = []string{
	"CREATE TABLE `user_basic` (`id` integer PRIMARY KEY AUTOINCREMENT,`created_at` datetime,`updated_at` datetime,`deleted_at` datetime,`username` varchar(100) NOT NULL,`password` varchar(255) NOT NULL,`token_generation` integer NOT NULL DEFAULT 0,`sdp` text)",
	"CREATE UNIQUE INDEX `idx_user_basic_username` ON `user_basic`(`username`)",
	"CREATE INDEX `idx_user_basic_deleted_at` ON `user_basic`(`deleted_at`)",
	"CREATE TABLE `room_basic` (`id` integer PRIMARY KEY AUTOINCREMENT,`created_at` datetime,`updated_at` datetime,`deleted_at` datetime,`identity` varchar(36) NOT NULL,`name` varchar(100) NOT NULL,`begin_at` datetime NOT NULL,`end_at` datetime NOT NULL,`create_id` integer NOT NULL)",
	"CREATE UNIQUE INDEX `idx_room_basic_identity` ON `room_basic`(`identity`)",
	"CREATE INDEX `idx_room_basic_deleted_at` ON `room_basic`(`deleted_at`)",
	"CREATE INDEX `idx_room_basic_begin_at` ON `room_basic`(`begin_at`)",
	"CREATE INDEX `idx_room_basic_create_id` ON `room_basic`(`create_id`)",
	"CREATE TABLE `room_user` (`id` integer PRIMARY KEY AUTOINCREMENT,`created_at` datetime,`updated_at` datetime,`deleted_at` datetime,`rid` integer NOT NULL,`uid` integer NOT NULL)",
	"CREATE UNIQUE INDEX `idx_room_user_rid_uid` ON `room_user`(`rid`,`uid`)",
	"CREATE INDEX `idx_room_user_uid` ON `room_user`(`uid`)",
	"CREATE INDEX `idx_room_user_deleted_at` ON `room_user`(`deleted_at`)",
	"INSERT INTO user_basic(id, username, password) VALUES (1, 'root', 'x'), (2, 'guest', 'x')",
	"INSERT INTO room_basic(id, identity, name, begin_at, end_at, create_id) VALUES (1, '5f0c3c5e-6f55-4a39-9b34-0d6f0a1d2b11', 'old standup', '2030-01-02 09:00:00', '2030-01-02 10:00:00', 1)",
	"INSERT INTO room_user(rid, uid) VALUES (1, 2)",
}

func TestOldSQLiteDatabaseUpgrades(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meeting.db")
	s, err := store.Open(ctx, "sqlite:"+path, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	// Replace the fresh tables with the old ones.
	for _, q := range []string{"DROP TABLE room_user", "DROP TABLE room_basic", "DROP TABLE user_basic"} {
		if err := s.DB().Exec(q).Error; err != nil {
			t.Fatal(err)
		}
	}
	for _, q := range oldSQLiteSchema {
		if err := s.DB().Exec(q).Error; err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	s.Close()

	for i := 0; i < 2; i++ { // the second open finds nothing to do
		s, err = store.Open(ctx, "sqlite:"+path, "", nil)
		if err != nil {
			t.Fatalf("open #%d of the old database: %v", i+1, err)
		}
		m, err := s.Meeting(ctx, "5f0c3c5e-6f55-4a39-9b34-0d6f0a1d2b11")
		if err != nil || m.Name != "old standup" || m.MaxParticipants != 50 || m.BeginAt.Format(time.RFC3339) != "2030-01-02T09:00:00Z" {
			t.Fatalf("old meeting after migration #%d: %+v, %v", i+1, m, err)
		}
		if users, err := s.Participants(ctx, m); err != nil || len(users) != 2 {
			t.Fatalf("old meeting's participants: %+v, %v", users, err)
		}
		wide := meeting.Meeting{Identity: strings.Repeat(fmt.Sprint(i), 64), Name: strings.Repeat("名", 200),
			BeginAt: m.BeginAt, EndAt: m.EndAt, CreatorID: 1}
		if err := s.CreateMeeting(ctx, &wide, []uint64{2}); err != nil {
			t.Fatalf("64-character identity: %v", err)
		}
		if got, err := s.Meeting(ctx, wide.Identity); err != nil || got.Name != wide.Name || got.MaxParticipants != 50 {
			t.Errorf("read back: %+v, %v", got, err)
		}
		again := wide
		if err := s.CreateMeeting(ctx, &again, nil); !errors.Is(err, store.ErrConflict) {
			t.Errorf("identity still unique after the migration: got %v, want ErrConflict", err)
		}
		s.Close()
	}
}

func TestMaxParticipantsHeld(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		alice, bob, carol, dave := mustUser(t, s, "alice"), mustUser(t, s, "bob"), mustUser(t, s, "carol"), mustUser(t, s, "dave")
		begin := time.Now().UTC().Add(time.Hour).Truncate(time.Millisecond)
		m := meeting.Meeting{Identity: "limits", Name: "limits", BeginAt: begin, EndAt: begin.Add(time.Hour), CreatorID: alice.ID, MaxParticipants: 2}
		if err := s.CreateMeeting(ctx, &m, []uint64{alice.ID, bob.ID, carol.ID}); err != nil || m.MaxParticipants != 2 {
			t.Fatalf("create 2 of 2: %+v, %v", m, err)
		}
		var tooMany *meeting.TooManyParticipantsError
		if err := s.AddParticipants(ctx, m.ID, []uint64{dave.ID, bob.ID}); !errors.As(err, &tooMany) || !errors.Is(err, meeting.ErrInvalid) ||
			tooMany.Invited != 3 || tooMany.Max != 2 || tooMany.Identity != "limits" {
			t.Fatalf("third participant: %v", err)
		}
		if ok, _ := s.IsParticipant(ctx, m.ID, dave.ID); ok {
			t.Error("a refused add wrote dave")
		}
		if _, err := s.UpdateMeeting(ctx, m.Identity, func(m *meeting.Meeting) error { m.MaxParticipants = 1; return nil }); !errors.As(err, &tooMany) ||
			tooMany.Invited != 2 || tooMany.Max != 1 {
			t.Fatalf("lower to 1 with 2 invited: %v", err)
		}
		if got, _ := s.Meeting(ctx, m.Identity); got.MaxParticipants != 2 {
			t.Errorf("a refused update wrote max_participants %d", got.MaxParticipants)
		}
		got, err := s.UpdateMeeting(ctx, m.Identity, func(m *meeting.Meeting) error { m.MaxParticipants = 3; return nil })
		if err != nil || got.MaxParticipants != 3 {
			t.Fatalf("raise to 3: %+v, %v", got, err)
		}
		if err := s.AddParticipants(ctx, m.ID, []uint64{dave.ID}); err != nil {
			t.Fatalf("third participant of 3: %v", err)
		}
		if got, _ := s.Meeting(ctx, m.Identity); got.MaxParticipants != 3 {
			t.Errorf("max_participants read back %d", got.MaxParticipants)
		}
	})
}

// A deleted meeting's identity can be given to a new meeting.
func TestDeletedIdentityIsFree(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		alice := mustUser(t, s, "alice")
		begin := time.Now().UTC().Add(time.Hour).Truncate(time.Millisecond)
		m := meeting.Meeting{Identity: "weekly", Name: "first", BeginAt: begin, EndAt: begin.Add(time.Hour), CreatorID: alice.ID}
		if err := s.CreateMeeting(ctx, &m, nil); err != nil {
			t.Fatal(err)
		}
		again := m
		again.ID = 0
		if err := s.CreateMeeting(ctx, &again, nil); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("taken identity: %v", err)
		}
		if err := s.DeleteMeeting(ctx, "weekly"); err != nil {
			t.Fatal(err)
		}
		again.Name = "second"
		if err := s.CreateMeeting(ctx, &again, nil); err != nil {
			t.Fatalf("identity of a deleted meeting: %v", err)
		}
		if got, err := s.Meeting(ctx, "weekly"); err != nil || got.Name != "second" {
			t.Errorf("got %+v, %v", got, err)
		}
	})
}
