package sync_test

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	rtcv1alpha1 "meeting.dev/meeting/api/v1alpha1"
	"meeting.dev/meeting/internal/meeting"
	"meeting.dev/meeting/internal/store"
	"meeting.dev/meeting/internal/store/storetest"
	apisync "meeting.dev/meeting/internal/sync"
)

// REST create, edit and delete reach the Meeting: spec fields applied by the
// meeting-api field manager, with the API's finalizer; the delete removes it.
func TestRESTToCluster(t *testing.T) {
	w := newWorld(t)
	r := startSync(t, w, w.st, syncOpts{})
	begin := time.Now().Add(24 * time.Hour).Truncate(time.Second).Add(123 * time.Millisecond)
	m := w.restCreate(t, "Planning", begin, w.bob.ID, w.carol.ID)
	name := apisync.ResourceName(m.Identity)

	eventually(t, "Meeting created", func() error {
		res, err := getMeeting(w.ns, name)
		if err != nil {
			return err
		}
		if res.Spec.Identity != m.Identity {
			return fmt.Errorf("identity %q", res.Spec.Identity)
		}
		return specIs(res, "Planning", begin, "alice", "bob", "carol")
	})
	res, _ := getMeeting(w.ns, name)
	if !controllerutil.ContainsFinalizer(res, apisync.Finalizer) {
		t.Errorf("finalizers %v lack %s", res.Finalizers, apisync.Finalizer)
	}
	applied := false
	for _, f := range res.ManagedFields {
		if f.Manager == apisync.FieldManager && f.Operation == metav1.ManagedFieldsOperationApply {
			applied = true
			if s := string(f.FieldsV1.Raw); strings.Contains(s, "f:media") || !strings.Contains(s, "f:title") {
				t.Errorf("meeting-api owns %s", s)
			}
		}
	}
	if !applied {
		t.Errorf("no server-side apply by %s in %+v", apisync.FieldManager, res.ManagedFields)
	}
	eventually(t, "meeting_cluster row", func() error {
		c, err := w.st.ClusterRowOf(bg, m.Identity)
		if err != nil {
			return err
		}
		if c.UID != string(res.UID) || c.Name != name {
			return fmt.Errorf("cluster row %+v", c)
		}
		return nil
	})
	eventually(t, "Synced condition", func() error { return syncedIs(w.ns, name, metav1.ConditionTrue, apisync.ReasonSynced) })

	// Edit: title, a participant removed; the row keeps its milliseconds.
	w.restRename(t, m.Identity, "Planning v2")
	if err := w.st.RemoveParticipant(bg, m.ID, w.carol.ID); err != nil {
		t.Fatal(err)
	}
	eventually(t, "Meeting edited", func() error {
		res, err := getMeeting(w.ns, name)
		if err != nil {
			return err
		}
		return specIs(res, "Planning v2", begin, "alice", "bob")
	})
	if got, _ := w.st.Meeting(bg, m.Identity); !got.BeginAt.Equal(begin.UTC()) {
		t.Errorf("row beginAt %s, want %s (milliseconds kept)", got.BeginAt, begin.UTC())
	}
	if err := hasEvent(t, w.ns, name, "Applied"); err != nil {
		t.Error(err)
	}

	// Delete.
	if err := w.st.DeleteMeeting(bg, m.Identity); err != nil {
		t.Fatal(err)
	}
	eventually(t, "Meeting deleted", func() error { return gone(w.ns, name) })
	eventually(t, "outbox empty", func() error {
		if n, _, err := w.st.OutboxStats(bg); err != nil || n != 0 {
			return fmt.Errorf("depth %d, %v", n, err)
		}
		return nil
	})
	if _, err := w.st.ClusterRowOf(bg, m.Identity); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("meeting_cluster after delete: %v", err)
	}
	eventually(t, "applies counted", func() error {
		// The counters move just after the outbox acknowledgement.
		ok := r.counter(t, "meeting_sync_applies_total", "op", "apply", "result", "ok")
		del := r.counter(t, "meeting_sync_applies_total", "op", "delete", "result", "ok")
		if ok < 2 || del != 1 {
			return fmt.Errorf("applies ok %v (want >= 2), deletes ok %v (want 1)", ok, del)
		}
		return nil
	})
}

func syncedIs(ns, name string, status metav1.ConditionStatus, reason string) error {
	m, err := getMeeting(ns, name)
	if err != nil {
		return err
	}
	c := meta.FindStatusCondition(m.Status.Conditions, apisync.ConditionSynced)
	if c == nil || c.Status != status || c.Reason != reason {
		return fmt.Errorf("Synced condition %+v, want %s %s", c, status, reason)
	}
	return nil
}

// REST writes made while no sync runs (the cluster out of reach) are all
// applied, in order, once it runs; and again across a restart on the same
// database.
func TestClusterUnreachableThenBack(t *testing.T) {
	w := newWorld(t)
	begin := time.Now().Add(48 * time.Hour).Truncate(time.Second)
	a := w.restCreate(t, "a1", begin)
	b := w.restCreate(t, "b1", begin, w.bob.ID)
	w.restRename(t, a.Identity, "a2")
	w.restRename(t, a.Identity, "a3")
	c := w.restCreate(t, "c1", begin, w.carol.ID)
	if err := w.st.DeleteMeeting(bg, b.Identity); err != nil {
		t.Fatal(err)
	}
	if n, _, _ := w.st.OutboxStats(bg); n != 6 {
		t.Fatalf("outbox depth %d before the sync runs, want 6", n)
	}

	r1 := startSync(t, w, w.st, syncOpts{})
	eventually(t, "first sync converges", func() error {
		if err := gone(w.ns, apisync.ResourceName(b.Identity)); err != nil {
			return err
		}
		for id, title := range map[string]string{a.Identity: "a3", c.Identity: "c1"} {
			m, err := getMeeting(w.ns, apisync.ResourceName(id))
			if err != nil {
				return err
			}
			if m.Spec.Title != title {
				return fmt.Errorf("%s: title %q, want %q", id, m.Spec.Title, title)
			}
		}
		if n, _, err := w.st.OutboxStats(bg); err != nil || n != 0 {
			return fmt.Errorf("outbox depth %d, %v", n, err)
		}
		return nil
	})
	r1.stop(t)

	// Down again: more writes, then a new process (store and manager) on the same database.
	w.restRename(t, c.Identity, "c2")
	if err := w.st.AddParticipants(bg, c.ID, []uint64{w.bob.ID}); err != nil {
		t.Fatal(err)
	}
	if err := w.st.DeleteMeeting(bg, a.Identity); err != nil {
		t.Fatal(err)
	}
	d := w.restCreate(t, "d1", begin)
	st2 := openStore(t, w.dbURL)
	startSync(t, w, st2, syncOpts{})
	eventually(t, "restarted sync converges", func() error {
		if err := gone(w.ns, apisync.ResourceName(a.Identity)); err != nil {
			return err
		}
		m, err := getMeeting(w.ns, apisync.ResourceName(c.Identity))
		if err != nil {
			return err
		}
		if err := specIs(m, "c2", begin, "alice", "bob", "carol"); err != nil {
			return err
		}
		if _, err := getMeeting(w.ns, apisync.ResourceName(d.Identity)); err != nil {
			return err
		}
		if n, _, err := st2.OutboxStats(bg); err != nil || n != 0 {
			return fmt.Errorf("outbox depth %d, %v", n, err)
		}
		return nil
	})
}

// kubectl creates, edits and deletes while the API is down; when the sync
// starts, the rows follow.
func TestKubectlWhileStopped(t *testing.T) {
	w := newWorld(t)
	begin := time.Now().Add(72 * time.Hour).Truncate(time.Second)
	edited := w.restCreate(t, "edit me", begin, w.bob.ID)
	deleted := w.restCreate(t, "delete me", begin)
	r := startSync(t, w, w.st, syncOpts{})
	for _, m := range []string{edited.Identity, deleted.Identity} {
		eventually(t, "applied", func() error {
			res, err := getMeeting(w.ns, apisync.ResourceName(m))
			if err != nil {
				return err
			}
			if !controllerutil.ContainsFinalizer(res, apisync.Finalizer) {
				return errors.New("no finalizer yet")
			}
			return nil
		})
	}
	eventually(t, "outbox acknowledged", func() error {
		if n, _, err := w.st.OutboxStats(bg); err != nil || n != 0 {
			return fmt.Errorf("outbox depth %d, %v", n, err)
		}
		return nil
	})
	r.stop(t)

	// kubectl's side, while the API is down.
	kube := kubeMeeting(w.ns, "from-kubectl", "alice", begin, "bob", "carol")
	if err := shared.client.Create(bg, kube); err != nil {
		t.Fatal(err)
	}
	res, _ := getMeeting(w.ns, apisync.ResourceName(edited.Identity))
	res.Spec.Title = "edited by kubectl"
	res.Spec.Participants = []string{"carol"}
	if err := shared.client.Update(bg, res); err != nil {
		t.Fatal(err)
	}
	del, _ := getMeeting(w.ns, apisync.ResourceName(deleted.Identity))
	if err := shared.client.Delete(bg, del); err != nil {
		t.Fatal(err)
	}
	if err := gone(w.ns, del.Name); err == nil {
		t.Fatal("the finalizer did not hold the deleted Meeting while the API was down")
	}

	r2 := startSync(t, w, w.st, syncOpts{})
	eventually(t, "rows follow kubectl", func() error {
		if err := rowIs(w.st, string(kube.UID), "kubectl from-kubectl", "bob", "carol"); err != nil {
			return err
		}
		if err := rowIs(w.st, edited.Identity, "edited by kubectl", "carol"); err != nil {
			return err
		}
		if err := noRow(w.st, deleted.Identity); err != nil {
			return err
		}
		return gone(w.ns, del.Name)
	})
	eventually(t, "imported Meeting has the finalizer and Synced", func() error {
		if err := syncedIs(w.ns, kube.Name, metav1.ConditionTrue, apisync.ReasonSynced); err != nil {
			return err
		}
		return hasEvent(t, w.ns, kube.Name, "Imported")
	})
	eventually(t, "resync counted the import", func() error {
		if n := r2.counter(t, "meeting_sync_resync_duration_seconds"); n < 1 {
			return fmt.Errorf("%v resyncs", n)
		}
		return nil
	})
	// The imported meeting is then edited through REST: the apply keeps the
	// resource's name and leaves spec.identity unset (its UID is the identity).
	w.restRename(t, string(kube.UID), "renamed through REST")
	eventually(t, "REST edit of an imported Meeting", func() error {
		m, err := getMeeting(w.ns, kube.Name)
		if err != nil {
			return err
		}
		if m.Spec.Title != "renamed through REST" || m.Spec.Identity != "" {
			return fmt.Errorf("title %q identity %q", m.Spec.Title, m.Spec.Identity)
		}
		return nil
	})
	// A kubectl delete with the sync running removes the row.
	if err := shared.client.Delete(bg, kube); err != nil {
		t.Fatal(err)
	}
	eventually(t, "kubectl delete", func() error {
		if err := noRow(w.st, string(kube.UID)); err != nil {
			return err
		}
		return gone(w.ns, kube.Name)
	})
}

// Unknown usernames: an unknown creator is not imported; unknown
// participants are skipped; both are told in an Event and the condition.
func TestUnknownUsers(t *testing.T) {
	w := newWorld(t)
	startSync(t, w, w.st, syncOpts{})
	begin := time.Now().Add(24 * time.Hour).Truncate(time.Second)
	noCreator := kubeMeeting(w.ns, "no-creator", "nobody", begin, "bob")
	someUnknown := kubeMeeting(w.ns, "some-unknown", "alice", begin, "bob", "zed", "yann")
	for _, m := range []*rtcv1alpha1.Meeting{noCreator, someUnknown} {
		if err := shared.client.Create(bg, m); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "unknown creator reported", func() error {
		if err := syncedIs(w.ns, noCreator.Name, metav1.ConditionFalse, apisync.ReasonUnknownCreator); err != nil {
			return err
		}
		return hasEvent(t, w.ns, noCreator.Name, apisync.ReasonUnknownCreator)
	})
	if err := noRow(w.st, string(noCreator.UID)); err != nil {
		t.Error(err)
	}
	eventually(t, "unknown participants skipped", func() error {
		if err := syncedIs(w.ns, someUnknown.Name, metav1.ConditionFalse, apisync.ReasonUnknownUsers); err != nil {
			return err
		}
		if err := hasEvent(t, w.ns, someUnknown.Name, apisync.ReasonUnknownUsers); err != nil {
			return err
		}
		return rowIs(w.st, string(someUnknown.UID), "kubectl some-unknown", "bob")
	})
	m, _ := getMeeting(w.ns, someUnknown.Name)
	c := meta.FindStatusCondition(m.Status.Conditions, apisync.ConditionSynced)
	if !strings.Contains(c.Message, "yann") || !strings.Contains(c.Message, "zed") {
		t.Errorf("condition message %q does not name the unknown users", c.Message)
	}
}

// A Meeting whose creator is unknown is never deleted by the API, not even
// when it carries the API's finalizer (a manifest copied from a synced
// Meeting): resyncs leave it, the finalizer is dropped, and it is imported
// once its creator registers, without waiting for a resync.
func TestUnknownCreatorIsKept(t *testing.T) {
	w := newWorld(t)
	r := startSync(t, w, w.st, syncOpts{resync: time.Hour})
	begin := time.Now().Add(24 * time.Hour).Truncate(time.Second)
	plain := kubeMeeting(w.ns, "plain", "dora", begin)
	copied := kubeMeeting(w.ns, "copied", "dora", begin)
	copied.Finalizers = []string{apisync.Finalizer}
	for _, m := range []*rtcv1alpha1.Meeting{plain, copied} {
		if err := shared.client.Create(bg, m); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{plain.Name, copied.Name} {
		eventually(t, name+" reported", func() error {
			return syncedIs(w.ns, name, metav1.ConditionFalse, apisync.ReasonUnknownCreator)
		})
	}
	for range 3 {
		if err := r.syncer.Resync(bg); err != nil {
			t.Fatalf("resync: %v", err)
		}
	}
	for _, name := range []string{plain.Name, copied.Name} {
		m, err := getMeeting(w.ns, name)
		if err != nil {
			t.Fatalf("%s after resyncs: %v", name, err)
		}
		if m.DeletionTimestamp != nil {
			t.Errorf("%s is being deleted", name)
		}
		if controllerutil.ContainsFinalizer(m, apisync.Finalizer) {
			t.Errorf("%s keeps the API's finalizer without a row", name)
		}
	}
	if n := r.counter(t, "meeting_sync_resync_drift_total", "kind", "row_vanished"); n != 0 {
		t.Errorf("row_vanished counted %v times", n)
	}

	if _, err := w.st.CreateUser(bg, "dora", "$2a$10$"+randHex(26)); err != nil {
		t.Fatal(err)
	}
	for _, m := range []*rtcv1alpha1.Meeting{plain, copied} {
		eventually(t, m.Name+" imported", func() error {
			if err := syncedIs(w.ns, m.Name, metav1.ConditionTrue, apisync.ReasonSynced); err != nil {
				return err
			}
			return rowIs(w.st, string(m.UID), "kubectl "+m.Name)
		})
	}
}

// Edits from both sides at once converge to one value on both sides.
func TestConflictConverges(t *testing.T) {
	w := newWorld(t)
	startSync(t, w, w.st, syncOpts{})
	begin := time.Now().Add(24 * time.Hour).Truncate(time.Second)
	m := w.restCreate(t, "start", begin)
	name := apisync.ResourceName(m.Identity)
	eventually(t, "applied", func() error { _, err := getMeeting(w.ns, name); return err })

	for round := range 5 {
		done := make(chan error, 1)
		go func() {
			done <- retryConflict(func() error {
				res, err := getMeeting(w.ns, name)
				if err != nil {
					return err
				}
				res.Spec.Title = fmt.Sprintf("kubectl %d", round)
				return shared.client.Update(bg, res)
			})
		}()
		w.restRename(t, m.Identity, fmt.Sprintf("rest %d", round))
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		eventually(t, "converged", func() error {
			res, err := getMeeting(w.ns, name)
			if err != nil {
				return err
			}
			row, err := w.st.Meeting(bg, m.Identity)
			if err != nil {
				return err
			}
			if pending, _ := w.st.HasPending(bg, m.Identity); pending {
				return errors.New("outbox entry pending")
			}
			if row.Name != res.Spec.Title {
				return fmt.Errorf("row %q, resource %q", row.Name, res.Spec.Title)
			}
			return nil
		})
	}
}

func retryConflict(f func() error) error {
	for range 50 {
		err := f()
		if err == nil || !strings.Contains(err.Error(), "the object has been modified") {
			return err
		}
	}
	return errors.New("too many conflicts")
}

// Two replicas with leader election: one runs the worker; when it stops,
// the other takes over.
func TestLeaderElection(t *testing.T) {
	w := newWorld(t)
	st2 := openStore(t, w.dbURL)
	r1 := startSync(t, w, w.st, syncOpts{leaderElection: true})
	r2 := startSync(t, w, st2, syncOpts{leaderElection: true})
	begin := time.Now().Add(24 * time.Hour).Truncate(time.Second)
	first := w.restCreate(t, "first", begin)
	eventually(t, "first applied", func() error { _, err := getMeeting(w.ns, apisync.ResourceName(first.Identity)); return err })

	var ok1, ok2 float64
	eventually(t, "apply counted", func() error {
		ok1 = r1.counter(t, "meeting_sync_applies_total", "op", "apply", "result", "ok")
		ok2 = r2.counter(t, "meeting_sync_applies_total", "op", "apply", "result", "ok")
		if ok1+ok2 == 0 {
			return errors.New("no apply counted yet")
		}
		return nil
	})
	if (ok1 > 0) == (ok2 > 0) {
		t.Fatalf("applies by replica: %v and %v; want exactly one leader applying", ok1, ok2)
	}
	leader, follower, followerStore := r1, r2, st2
	if ok2 > 0 {
		leader, follower, followerStore = r2, r1, w.st
	}
	leader.stop(t)
	// Written through the follower's store (its Notify hook) and through the
	// old leader's store alike: the new leader polls for other replicas' entries.
	second := meetingVia(t, w, followerStore, "second", begin)
	eventually(t, "the other replica takes over", func() error {
		_, err := getMeeting(w.ns, apisync.ResourceName(second))
		return err
	})
	eventually(t, "the new leader counted its apply", func() error {
		if n := follower.counter(t, "meeting_sync_applies_total", "op", "apply", "result", "ok"); n < 1 {
			return fmt.Errorf("the new leader applied %v", n)
		}
		return nil
	})
}

func meetingVia(t *testing.T, w *world, st *store.Store, title string, begin time.Time) string {
	t.Helper()
	ww := *w
	ww.st = st
	return ww.restCreate(t, title, begin).Identity
}

// The operator runs alongside: its phase flows back into meeting_cluster.
func TestOperatorPhaseFlowsBack(t *testing.T) {
	w := newWorld(t)
	startSync(t, w, w.st, syncOpts{operator: true})
	m := w.restCreate(t, "later", time.Now().Add(time.Hour))
	eventually(t, "Scheduled in meeting_cluster", func() error { return phaseIs(w.st, m.Identity, "Scheduled") })
	// Moved to now: the operator starts the media (Starting until it is available).
	if _, err := w.st.UpdateMeeting(bg, m.Identity, func(mm *meeting.Meeting) error {
		mm.BeginAt = time.Now().Add(-time.Minute).UTC().Truncate(time.Second)
		mm.EndAt = mm.BeginAt.Add(time.Hour)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "Starting in meeting_cluster", func() error { return phaseIs(w.st, m.Identity, "Starting") })
	res, err := getMeeting(w.ns, apisync.ResourceName(m.Identity))
	if err != nil {
		t.Fatal(err)
	}
	// The operator's conditions and the API's Synced condition live side by side.
	if meta.FindStatusCondition(res.Status.Conditions, rtcv1alpha1.ConditionReady) == nil {
		t.Errorf("no Ready condition in %+v", res.Status.Conditions)
	}
	eventually(t, "Synced kept beside the operator's conditions", func() error {
		return syncedIs(w.ns, res.Name, metav1.ConditionTrue, apisync.ReasonSynced)
	})
	var list rtcv1alpha1.MeetingList
	if err := shared.client.List(bg, &list, client.InNamespace(w.ns)); err != nil || len(list.Items) != 1 {
		t.Fatalf("Meetings %d, %v", len(list.Items), err)
	}
}

func phaseIs(st *store.Store, identity, phase string) error {
	c, err := st.ClusterRowOf(bg, identity)
	if err != nil {
		return err
	}
	if c.Phase != phase {
		return fmt.Errorf("meeting_cluster phase %q, want %q", c.Phase, phase)
	}
	return nil
}

// The API server refuses the worker's writes (unreachable) while REST
// writes go on: the entries stay, failures are counted and retried, and once
// it is back everything is applied, each identity in order.
func TestApplyRetriesUntilClusterBack(t *testing.T) {
	w := newWorld(t)
	var down atomic.Bool
	down.Store(true)
	r := startSync(t, w, w.st, syncOpts{wrap: func(rt http.RoundTripper) http.RoundTripper { return cutOff{next: rt, down: &down} }})
	begin := time.Now().Add(24 * time.Hour).Truncate(time.Second)
	a := w.restCreate(t, "a1", begin)
	b := w.restCreate(t, "b1", begin, w.bob.ID)
	w.restRename(t, a.Identity, "a2")
	w.restRename(t, a.Identity, "a3")
	eventually(t, "failures counted and retried", func() error {
		if n := r.counter(t, "meeting_sync_applies_total", "op", "apply", "result", "error"); n < 2 {
			return fmt.Errorf("%v failed applies", n)
		}
		batches, err := w.st.DueOutbox(bg, time.Now().Add(time.Hour), 100)
		if err != nil {
			return err
		}
		if len(batches) != 2 || len(batches[0].Entries) != 3 || batches[0].Entries[0].Attempts < 1 ||
			!strings.Contains(batches[0].Entries[0].LastError, "connection refused") {
			return fmt.Errorf("outbox %+v", batches)
		}
		if d := r.counter(t, "meeting_sync_outbox_depth"); d != 4 {
			return fmt.Errorf("depth gauge %v, want 4", d)
		}
		return nil
	})
	if _, err := getMeeting(w.ns, apisync.ResourceName(a.Identity)); err == nil {
		t.Fatal("a Meeting exists although every write was refused")
	}
	down.Store(false)
	eventually(t, "converged once the API server is back", func() error {
		m, err := getMeeting(w.ns, apisync.ResourceName(a.Identity))
		if err != nil {
			return err
		}
		if err := specIs(m, "a3", begin, "alice"); err != nil {
			return err
		}
		m, err = getMeeting(w.ns, apisync.ResourceName(b.Identity))
		if err != nil {
			return err
		}
		if err := specIs(m, "b1", begin, "alice", "bob"); err != nil {
			return err
		}
		if d := r.counter(t, "meeting_sync_outbox_depth"); d != 0 {
			return fmt.Errorf("depth gauge %v", d)
		}
		return nil
	})
}

// The resync's rules for what changed while the API was down: a row that
// vanished deletes its resource, a resource that vanished deletes its row,
// a row never in the cluster is applied.
func TestResyncRules(t *testing.T) {
	w := newWorld(t)
	begin := time.Now().Add(24 * time.Hour).Truncate(time.Second)
	x := w.restCreate(t, "row will vanish", begin)
	y := w.restCreate(t, "resource will vanish", begin)
	r1 := startSync(t, w, w.st, syncOpts{})
	for _, id := range []string{x.Identity, y.Identity} {
		eventually(t, "applied and known", func() error {
			c, err := w.st.ClusterRowOf(bg, id)
			if err != nil {
				return err
			}
			if c.UID == "" {
				return errors.New("no UID yet")
			}
			// Acknowledged too: a pending apply would bring y back (rightly).
			if n, _, err := w.st.OutboxStats(bg); err != nil || n != 0 {
				return fmt.Errorf("outbox depth %d, %v", n, err)
			}
			return nil
		})
	}
	r1.stop(t)

	storetest.Exec(t, w.dbURL, "DELETE FROM room_basic WHERE identity = '"+x.Identity+"'")
	ym, err := getMeeting(w.ns, apisync.ResourceName(y.Identity))
	if err != nil {
		t.Fatal(err)
	}
	controllerutil.RemoveFinalizer(ym, apisync.Finalizer)
	if err := shared.client.Update(bg, ym); err != nil {
		t.Fatal(err)
	}
	if err := shared.client.Delete(bg, ym); err != nil {
		t.Fatal(err)
	}
	eventually(t, "y deleted", func() error { return gone(w.ns, ym.Name) })
	// A row written without the outbox (as by a version without the sync).
	plain, err := store.Open(bg, w.dbURL, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	z := meeting.Meeting{Identity: "never-applied", Name: "z", BeginAt: begin, EndAt: begin.Add(time.Hour), CreatorID: w.alice.ID, MaxParticipants: 50}
	if err := plain.CreateMeeting(bg, &z, nil); err != nil {
		t.Fatal(err)
	}

	r2 := startSync(t, w, w.st, syncOpts{})
	eventually(t, "resync converged", func() error {
		if err := gone(w.ns, apisync.ResourceName(x.Identity)); err != nil {
			return err
		}
		if err := noRow(w.st, y.Identity); err != nil {
			return err
		}
		m, err := getMeeting(w.ns, apisync.ResourceName("never-applied"))
		if err != nil {
			return err
		}
		return specIs(m, "z", begin, "alice")
	})
	for _, kind := range []string{"row_vanished", "resource_vanished", "never_applied"} {
		if n := r2.counter(t, "meeting_sync_resync_drift_total", "kind", kind); n < 1 {
			t.Errorf("drift %s counted %v times", kind, n)
		}
	}
}

// A second Meeting with an identity another one holds is refused with
// Synced=False, reason Conflict; its deletion leaves the first one's row.
func TestDuplicateIdentity(t *testing.T) {
	w := newWorld(t)
	startSync(t, w, w.st, syncOpts{})
	begin := time.Now().Add(24 * time.Hour).Truncate(time.Second)
	first := kubeMeeting(w.ns, "first", "alice", begin, "bob")
	first.Spec.Identity = "dup-1"
	if err := shared.client.Create(bg, first); err != nil {
		t.Fatal(err)
	}
	eventually(t, "first imported", func() error {
		if err := rowIs(w.st, "dup-1", "kubectl first", "bob"); err != nil {
			return err
		}
		return syncedIs(w.ns, "first", metav1.ConditionTrue, apisync.ReasonSynced)
	})
	second := kubeMeeting(w.ns, "second", "bob", begin)
	second.Spec.Identity = "dup-1"
	if err := shared.client.Create(bg, second); err != nil {
		t.Fatal(err)
	}
	eventually(t, "second refused", func() error {
		if err := syncedIs(w.ns, "second", metav1.ConditionFalse, apisync.ReasonConflict); err != nil {
			return err
		}
		return hasEvent(t, w.ns, "second", apisync.ReasonConflict)
	})
	if err := shared.client.Delete(bg, second); err != nil {
		t.Fatal(err)
	}
	eventually(t, "second deleted", func() error { return gone(w.ns, "second") })
	if err := rowIs(w.st, "dup-1", "kubectl first", "bob"); err != nil {
		t.Fatalf("the first Meeting's row after the duplicate's delete: %v", err)
	}
	m, err := getMeeting(w.ns, "first")
	if err != nil || !controllerutil.ContainsFinalizer(m, apisync.Finalizer) {
		t.Fatalf("first: %v, %v", m, err)
	}
}
