package sync

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	rtcv1alpha1 "meeting.dev/meeting/api/v1alpha1"
	"meeting.dev/meeting/internal/meeting"
	"meeting.dev/meeting/internal/store"
)

// pendingRetry is how soon a Meeting whose row has a pending REST change is
// looked at again (the worker's apply also triggers a reconcile).
const pendingRetry = 2 * time.Second

// unknownUserRetry is how soon a Meeting naming a creator or participant
// who is not a user is looked at again (they may register meanwhile).
const unknownUserRetry = 30 * time.Second

// watcher reconciles the Meetings of the namespace into rows.
type watcher struct{ s *Syncer }

// Reconcile makes the row follow one Meeting. Write races (optimistic
// locks) are retried soon rather than reported.
func (w *watcher) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var m rtcv1alpha1.Meeting
	if err := w.s.client.Get(ctx, req.NamespacedName, &m); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	requeue, err := w.s.fromCluster(ctx, &m)
	if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
		return ctrl.Result{RequeueAfter: 100 * time.Millisecond}, nil
	}
	return ctrl.Result{RequeueAfter: requeue}, err
}

// fromCluster brings the row, meeting_cluster and the Synced condition in
// line with a Meeting. It returns how soon to look again (0: on the next
// change).
func (s *Syncer) fromCluster(ctx context.Context, m *rtcv1alpha1.Meeting) (time.Duration, error) {
	identity := strings.ToLower(m.RoomIdentity())
	log := logf.FromContext(ctx).WithValues("identity", identity)
	now := s.cfg.Now()

	known, err := s.cfg.Store.ClusterRowOf(ctx, identity)
	hasKnown := err == nil
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return 0, err
	}
	// Another resource already holds this identity: this one is a duplicate.
	if hasKnown && known.Name != m.Name && known.UID != "" && known.UID != string(m.UID) {
		var other rtcv1alpha1.Meeting
		err := s.reader.Get(ctx, client.ObjectKey{Namespace: m.Namespace, Name: known.Name}, &other)
		if err == nil && string(other.UID) == known.UID {
			if m.DeletionTimestamp != nil {
				return 0, s.dropFinalizer(ctx, m)
			}
			msg := fmt.Sprintf("identity %s belongs to Meeting %s; this one is not synced", identity, known.Name)
			return 0, s.setSynced(ctx, m, metav1.ConditionFalse, ReasonConflict, msg, corev1.EventTypeWarning)
		}
		if err != nil && !apierrors.IsNotFound(err) {
			return 0, fmt.Errorf("get Meeting %s: %w", known.Name, err)
		}
	}

	if m.DeletionTimestamp != nil {
		if !controllerutil.ContainsFinalizer(m, Finalizer) {
			return 0, nil
		}
		existed, err := s.cfg.Store.DeleteFromCluster(ctx, identity)
		if err != nil {
			return 0, err
		}
		if existed {
			s.recorder.Eventf(m, nil, corev1.EventTypeNormal, "RowDeleted", "Delete", "deleted the API's meeting %s", identity)
			s.metrics.lag.WithLabelValues("from_cluster").Observe(max(now.Sub(m.DeletionTimestamp.Time).Seconds(), 0))
			log.Info("row deleted with its Meeting")
		}
		return 0, s.dropFinalizer(ctx, m)
	}

	// Users.
	names := append([]string{m.Spec.Creator}, m.Spec.Participants...)
	ids, err := s.cfg.Store.UsersByName(ctx, names)
	if err != nil {
		return 0, err
	}
	creatorID, ok := ids[strings.ToLower(m.Spec.Creator)]
	if !ok {
		// Without a row the API holds nothing of this Meeting: its finalizer
		// (from a copied manifest) would only hold up a delete.
		if controllerutil.ContainsFinalizer(m, Finalizer) {
			if _, err := s.cfg.Store.SyncMeeting(ctx, identity); errors.Is(err, store.ErrNotFound) {
				if err := s.dropFinalizer(ctx, m); err != nil {
					return 0, err
				}
			} else if err != nil {
				return 0, err
			}
		}
		msg := fmt.Sprintf("creator %q is not a user of the API; the meeting is not synced", m.Spec.Creator)
		return unknownUserRetry, s.setSynced(ctx, m, metav1.ConditionFalse, ReasonUnknownCreator, msg, corev1.EventTypeWarning)
	}
	var knownNames, unknown []string
	var participantIDs []uint64
	for _, p := range normalizeUsers(m.Spec.Creator, m.Spec.Participants) {
		if id, ok := ids[strings.ToLower(p)]; ok {
			knownNames = append(knownNames, p)
			participantIDs = append(participantIDs, id)
		} else {
			unknown = append(unknown, p)
		}
	}

	pending, err := s.cfg.Store.HasPending(ctx, identity)
	if err != nil {
		return 0, err
	}
	cur, err := s.cfg.Store.SyncMeeting(ctx, identity)
	hasRow := err == nil
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return 0, err
	}
	status := clusterRow(m, now)
	if pending {
		// The REST change goes to the cluster first; only the status is kept.
		if hasKnown && known.Name == m.Name && !sameStatus(known, status) {
			if err := s.cfg.Store.SetClusterRow(ctx, status); err != nil {
				return 0, err
			}
		}
		return pendingRetry, nil
	}

	switch {
	case !hasRow || rowShape(cur) != resourceShape(m, knownNames):
		in := store.FromCluster{
			Meeting: meeting.Meeting{
				Identity: identity, Name: m.Spec.Title,
				BeginAt: m.Spec.BeginAt.UTC(), EndAt: m.Spec.EndAt.UTC(),
				CreatorID: creatorID, MaxParticipants: int(shapeOf(m.Spec, identity).max),
			},
			ParticipantIDs: participantIDs,
			Cluster:        status,
		}
		if hasRow && sameSecond(cur.Meeting.BeginAt, in.Meeting.BeginAt) {
			in.Meeting.BeginAt = cur.Meeting.BeginAt // keep the row's milliseconds
		}
		if hasRow && sameSecond(cur.Meeting.EndAt, in.Meeting.EndAt) {
			in.Meeting.EndAt = cur.Meeting.EndAt
		}
		if _, err := s.cfg.Store.ApplyFromCluster(ctx, in); err != nil {
			if errors.Is(err, store.ErrPending) {
				return pendingRetry, nil
			}
			return 0, err
		}
		reason, note := "RowUpdated", "updated the API's meeting %s from the Meeting"
		if !hasRow {
			reason, note = "Imported", "imported the Meeting as the API's meeting %s"
		}
		s.recorder.Eventf(m, nil, corev1.EventTypeNormal, reason, "Sync", note, identity)
		if t, ok := lastWrite(m, !hasRow); ok {
			s.metrics.lag.WithLabelValues("from_cluster").Observe(max(now.Sub(t).Seconds(), 0))
		}
		log.Info("row follows its Meeting", "reason", reason)
	case !hasKnown || !sameStatus(known, status):
		if err := s.cfg.Store.SetClusterRow(ctx, status); err != nil {
			return 0, err
		}
	}

	if !controllerutil.ContainsFinalizer(m, Finalizer) {
		base := m.DeepCopy()
		controllerutil.AddFinalizer(m, Finalizer)
		if err := s.client.Patch(ctx, m, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})); err != nil {
			return 0, fmt.Errorf("add finalizer to Meeting %s: %w", m.Name, err)
		}
	}
	if len(unknown) > 0 {
		msg := fmt.Sprintf("participants not known to the API, skipped: %s", strings.Join(unknown, ", "))
		return unknownUserRetry, s.setSynced(ctx, m, metav1.ConditionFalse, ReasonUnknownUsers, msg, corev1.EventTypeWarning)
	}
	return 0, s.setSynced(ctx, m, metav1.ConditionTrue, ReasonSynced, "the API's row matches the Meeting", "")
}

func sameSecond(a, b time.Time) bool { return a.Unix() == b.Unix() }

// lastWrite is when the Meeting was last written by someone other than the
// API, as its managed fields tell (second precision); for a new Meeting its
// creation. ok is false when it cannot tell (a cache that strips managed
// fields), and no lag is observed then.
func lastWrite(m *rtcv1alpha1.Meeting, created bool) (t time.Time, ok bool) {
	if created {
		t, ok = m.CreationTimestamp.Time, true
	}
	for _, f := range m.ManagedFields {
		if f.Manager != FieldManager && f.Time != nil && f.Subresource == "" && f.Time.After(t) {
			t, ok = f.Time.Time, true
		}
	}
	return t, ok
}

// setSynced sets the API's Synced condition with a status patch carrying
// the resourceVersion (the operator's conditions are kept), and records an
// Event of eventType (none when empty) when the condition changes.
func (s *Syncer) setSynced(ctx context.Context, m *rtcv1alpha1.Meeting, st metav1.ConditionStatus, reason, msg, eventType string) error {
	old := meta.FindStatusCondition(m.Status.Conditions, ConditionSynced)
	if old != nil && old.Status == st && old.Reason == reason && old.Message == msg && old.ObservedGeneration == m.Generation {
		return nil
	}
	base := m.DeepCopy()
	meta.SetStatusCondition(&m.Status.Conditions, metav1.Condition{
		Type: ConditionSynced, Status: st, Reason: reason, Message: truncate(msg, 32000),
		ObservedGeneration: m.Generation, LastTransitionTime: metav1.NewTime(s.cfg.Now()),
	})
	if err := s.client.Status().Patch(ctx, m, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})); err != nil {
		return fmt.Errorf("set Synced condition of Meeting %s: %w", m.Name, err)
	}
	if eventType != "" && (old == nil || old.Reason != reason || old.Message != msg) {
		s.recorder.Eventf(m, nil, eventType, reason, "Sync", "%s", msg)
	}
	return nil
}
