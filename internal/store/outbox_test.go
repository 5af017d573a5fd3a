package store_test

import (
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"meeting.dev/meeting/internal/meeting"
	"meeting.dev/meeting/internal/store"
)

// Every REST write records one outbox entry in its transaction when the
// outbox is enabled, and none when it is not; the callback runs after commit.
func TestOutboxRecordsWrites(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		alice, bob := mustUser(t, s, "alice"), mustUser(t, s, "bob")
		begin := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
		before := mustMeeting(t, s, alice.ID, "before", begin)
		if n, _, err := s.OutboxStats(ctx); err != nil || n != 0 {
			t.Fatalf("outbox disabled: depth %d, %v; want 0", n, err)
		}
		var woken atomic.Int32
		s.EnableOutbox()
		s.OnOutbox(func() { woken.Add(1) })

		m := mustMeeting(t, s, alice.ID, "one", begin)
		if _, err := s.UpdateMeeting(ctx, m.Identity, func(m *meeting.Meeting) error { m.Name = "two"; return nil }); err != nil {
			t.Fatal(err)
		}
		if err := s.AddParticipants(ctx, m.ID, []uint64{bob.ID}); err != nil {
			t.Fatal(err)
		}
		if err := s.RemoveParticipant(ctx, m.ID, bob.ID); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteMeeting(ctx, before.Identity); err != nil {
			t.Fatal(err)
		}
		// A refused change records nothing.
		refused := errors.New("no")
		if _, err := s.UpdateMeeting(ctx, m.Identity, func(*meeting.Meeting) error { return refused }); !errors.Is(err, refused) {
			t.Fatalf("refused update: %v", err)
		}
		if err := s.RemoveParticipant(ctx, m.ID, bob.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("remove twice: %v", err)
		}

		depth, oldest, err := s.OutboxStats(ctx)
		if err != nil || depth != 5 || oldest.IsZero() {
			t.Fatalf("OutboxStats = %d, %v, %v; want 5 entries", depth, oldest, err)
		}
		if got := woken.Load(); got != 5 {
			t.Fatalf("callback ran %d times, want 5", got)
		}
		batches, err := s.DueOutbox(ctx, time.Now().Add(time.Second), 100)
		if err != nil {
			t.Fatal(err)
		}
		if len(batches) != 2 || batches[0].Identity != m.Identity || batches[1].Identity != before.Identity {
			t.Fatalf("batches %+v: want %s then %s", batches, m.Identity, before.Identity)
		}
		var ops []string
		for _, e := range batches[0].Entries {
			ops = append(ops, e.Op)
		}
		if !slices.Equal(ops, []string{"apply", "apply", "apply", "apply"}) || batches[1].Last().Op != store.OpDelete {
			t.Fatalf("ops %v and %s", ops, batches[1].Last().Op)
		}
		if ok, err := s.HasPending(ctx, m.Identity); err != nil || !ok {
			t.Fatalf("HasPending = %v, %v", ok, err)
		}

		// A failure holds the identity back (later entries too) until its time.
		now := time.Now()
		if err := s.FailOutbox(ctx, m.Identity, batches[0].MaxID(), errors.New("cluster down"), now.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if _, err := s.UpdateMeeting(ctx, m.Identity, func(m *meeting.Meeting) error { m.Name = "three"; return nil }); err != nil {
			t.Fatal(err)
		}
		due, err := s.DueOutbox(ctx, now.Add(time.Minute), 100)
		if err != nil || len(due) != 1 || due[0].Identity != before.Identity {
			t.Fatalf("due while backing off: %+v, %v", due, err)
		}
		later, err := s.DueOutbox(ctx, now.Add(2*time.Hour), 100)
		if err != nil || len(later) != 2 || len(later[0].Entries) != 5 || later[0].Entries[0].Attempts != 1 || later[0].Entries[0].LastError != "cluster down" {
			t.Fatalf("due after back-off: %+v, %v", later, err)
		}
		// Ack up to an id keeps what came after it.
		if err := s.AckOutbox(ctx, m.Identity, batches[0].MaxID()); err != nil {
			t.Fatal(err)
		}
		left, _ := s.DueOutbox(ctx, now.Add(2*time.Hour), 100)
		if len(left) != 2 || len(left[0].Entries) != 1 {
			t.Fatalf("after ack: %+v", left)
		}
	})
}

// Rows written from the cluster record no outbox entry, replace the
// participants, bring back a soft-deleted identity, and refuse while a REST
// change is pending.
func TestApplyFromCluster(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		alice, bob, carol := mustUser(t, s, "alice"), mustUser(t, s, "bob"), mustUser(t, s, "carol")
		s.EnableOutbox()
		begin := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
		in := store.FromCluster{
			Meeting: meeting.Meeting{Identity: "kube-made", Name: "From kubectl", BeginAt: begin, EndAt: begin.Add(time.Hour),
				CreatorID: alice.ID, MaxParticipants: 7},
			ParticipantIDs: []uint64{bob.ID, carol.ID, alice.ID},
			Cluster:        store.ClusterRow{Name: "kube-made", UID: "u-1", Phase: "Scheduled", SyncedAt: time.Now()},
		}
		if _, err := s.ApplyFromCluster(ctx, in); err != nil {
			t.Fatal(err)
		}
		sm, err := s.SyncMeeting(ctx, "kube-made")
		if err != nil {
			t.Fatal(err)
		}
		if sm.Creator != "alice" || !slices.Equal(sm.Participants, []string{"bob", "carol"}) || sm.Meeting.MaxParticipants != 7 ||
			sm.Cluster == nil || sm.Cluster.UID != "u-1" || sm.Meeting.Name != "From kubectl" {
			t.Fatalf("imported %+v (cluster %+v)", sm, sm.Cluster)
		}
		if n, _, _ := s.OutboxStats(ctx); n != 0 {
			t.Fatalf("outbox depth %d after a write from the cluster, want 0", n)
		}
		in.Meeting.Name, in.ParticipantIDs = "Edited", []uint64{carol.ID}
		if _, err := s.ApplyFromCluster(ctx, in); err != nil {
			t.Fatal(err)
		}
		sm, _ = s.SyncMeeting(ctx, "kube-made")
		if sm.Meeting.Name != "Edited" || !slices.Equal(sm.Participants, []string{"carol"}) {
			t.Fatalf("updated %+v", sm)
		}
		// A pending REST change wins: nothing is written.
		if _, err := s.UpdateMeeting(ctx, "kube-made", func(m *meeting.Meeting) error { m.Name = "REST"; return nil }); err != nil {
			t.Fatal(err)
		}
		in.Meeting.Name = "kubectl again"
		if _, err := s.ApplyFromCluster(ctx, in); !errors.Is(err, store.ErrPending) {
			t.Fatalf("apply with a pending entry: %v, want ErrPending", err)
		}
		if got, _ := s.Meeting(ctx, "kube-made"); got.Name != "REST" {
			t.Fatalf("name %q, want REST", got.Name)
		}
		// Deleted in the cluster: row, members, cluster row and pending entries go.
		existed, err := s.DeleteFromCluster(ctx, "kube-made")
		if err != nil || !existed {
			t.Fatalf("DeleteFromCluster = %v, %v", existed, err)
		}
		if _, err := s.Meeting(ctx, "kube-made"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("row after delete: %v", err)
		}
		if ok, _ := s.HasPending(ctx, "kube-made"); ok {
			t.Fatal("an entry survived the delete")
		}
		if _, err := s.ClusterRowOf(ctx, "kube-made"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("cluster row after delete: %v", err)
		}
		// The same identity applied again brings the soft-deleted row back.
		in.Meeting.Name = "again"
		if _, err := s.ApplyFromCluster(ctx, in); err != nil {
			t.Fatalf("re-import: %v", err)
		}
		if got, err := s.Meeting(ctx, "kube-made"); err != nil || got.Name != "again" {
			t.Fatalf("re-imported %+v, %v", got, err)
		}
		all, err := s.SyncMeetings(ctx)
		if err != nil || len(all) != 1 {
			t.Fatalf("SyncMeetings = %d, %v", len(all), err)
		}
	})
}
