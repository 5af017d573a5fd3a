package sync

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	rtcv1alpha1 "meeting.dev/meeting/api/v1alpha1"
	"meeting.dev/meeting/internal/store"
)

// outboxBatch is how many outbox entries one round of the worker reads.
const outboxBatch = 500

// runWorker carries outbox entries to the cluster until ctx ends: at once
// when Notify is called, and every PollInterval for entries written by other
// replicas and for retries.
func (s *Syncer) runWorker(ctx context.Context) error {
	log := logf.FromContext(ctx).WithName("sync-worker")
	ctx = logf.IntoContext(ctx, log)
	tick := time.NewTicker(s.cfg.PollInterval)
	defer tick.Stop()
	for {
		if err := s.drain(ctx); err != nil && ctx.Err() == nil {
			log.Error(err, "outbox round failed; retrying")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.wake:
		case <-tick.C:
		}
	}
}

// drain handles every due batch of the outbox, then updates the gauges.
func (s *Syncer) drain(ctx context.Context) error {
	for {
		batches, err := s.cfg.Store.DueOutbox(ctx, s.cfg.Now(), outboxBatch)
		if err != nil {
			return err
		}
		done := 0
		for _, b := range batches {
			if ctx.Err() != nil {
				return nil
			}
			if s.handleBatch(ctx, b) {
				done++
			}
		}
		if err := s.updateGauges(ctx); err != nil {
			return err
		}
		// Another round only when this one made progress and may have left
		// entries behind (the read was full).
		if done == 0 || len(batches) == 0 || countEntries(batches) < outboxBatch {
			return nil
		}
	}
}

func countEntries(bs []store.OutboxBatch) int {
	n := 0
	for _, b := range bs {
		n += len(b.Entries)
	}
	return n
}

func (s *Syncer) updateGauges(ctx context.Context) error {
	depth, oldest, err := s.cfg.Store.OutboxStats(ctx)
	if err != nil {
		return err
	}
	s.metrics.outboxDepth.Set(float64(depth))
	age := 0.0
	if depth > 0 {
		age = max(s.cfg.Now().Sub(oldest).Seconds(), 0)
	}
	s.metrics.outboxOldestAge.Set(age)
	return nil
}

// handleBatch applies one identity's pending changes; it acknowledges them
// on success and holds them back with a growing delay on failure (they are
// never dropped). It reports success.
func (s *Syncer) handleBatch(ctx context.Context, b store.OutboxBatch) bool {
	log := logf.FromContext(ctx).WithValues("identity", b.Identity)
	op, err := s.carry(ctx, b)
	if err != nil {
		s.metrics.applies.WithLabelValues(op, "error").Inc()
		attempts := b.Entries[0].Attempts
		delay := s.backoff(attempts)
		log.Info("apply failed; retrying", "op", op, "attempt", attempts+1, "retryIn", delay, "err", err.Error())
		if attempts == 0 && op == store.OpApply {
			// Once per failing run of this identity; the Meeting may not exist.
			ref := &rtcv1alpha1.Meeting{ObjectMeta: metav1.ObjectMeta{Namespace: s.cfg.Namespace, Name: s.nameOf(ctx, b)}}
			s.recorder.Eventf(ref, nil, corev1.EventTypeWarning, "ApplyFailed", "Apply", "applying the API's meeting %s failed: %s", b.Identity, truncate(err.Error(), 512))
		}
		if ferr := s.cfg.Store.FailOutbox(ctx, b.Identity, b.MaxID(), err, s.cfg.Now().Add(delay)); ferr != nil {
			log.Error(ferr, "record outbox failure")
		}
		return false
	}
	if err := s.cfg.Store.AckOutbox(ctx, b.Identity, b.MaxID()); err != nil {
		// Applied but still pending: applied again later, which is harmless.
		log.Error(err, "acknowledge outbox entries")
		return false
	}
	s.metrics.applies.WithLabelValues(op, "ok").Inc()
	s.metrics.lag.WithLabelValues("to_cluster").Observe(max(s.cfg.Now().Sub(b.Entries[0].CreatedAt).Seconds(), 0))
	return true
}

func (s *Syncer) backoff(attempts int) time.Duration {
	d := 250 * time.Millisecond
	for i := 0; i < attempts && d < s.cfg.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, s.cfg.MaxBackoff)
}

// carry brings the cluster to the row's current state: apply when the row
// exists, delete when it does not.
func (s *Syncer) carry(ctx context.Context, b store.OutboxBatch) (string, error) {
	sm, err := s.cfg.Store.SyncMeeting(ctx, b.Identity)
	if errors.Is(err, store.ErrNotFound) {
		name := b.Name()
		if name == "" {
			name = ResourceName(b.Identity)
		}
		return store.OpDelete, s.deleteResource(ctx, b.Identity, name)
	}
	if err != nil {
		return store.OpApply, err
	}
	return store.OpApply, s.apply(ctx, sm)
}

// apply server-side applies the fields the API owns, with force, and its
// finalizer; then makes spec.participants exactly the row's (items another
// manager owns survive an apply that leaves them out), and records the
// resource in meeting_cluster.
func (s *Syncer) apply(ctx context.Context, sm store.SyncedMeeting) error {
	if sm.Creator == "" {
		return fmt.Errorf("meeting %s: its creator (user %d) does not exist", sm.Meeting.Identity, sm.Meeting.CreatorID)
	}
	name := ResourceName(sm.Meeting.Identity)
	if sm.Cluster != nil && sm.Cluster.Name != "" {
		name = sm.Cluster.Name
	}
	spec := ToSpec(sm.Meeting, sm.Creator, sm.Participants)
	specMap := map[string]any{
		"identity":        spec.Identity,
		"title":           spec.Title,
		"beginAt":         spec.BeginAt.UTC().Format(time.RFC3339),
		"endAt":           spec.EndAt.UTC().Format(time.RFC3339),
		"creator":         spec.Creator,
		"maxParticipants": int64(spec.MaxParticipants),
	}
	if sm.Cluster != nil && sm.Cluster.UID == sm.Meeting.Identity {
		// Imported from a Meeting without spec.identity (its UID is the
		// identity): the field stays unset, as the CRD's rules require.
		delete(specMap, "identity")
	}
	if len(spec.Participants) > 0 {
		ps := make([]any, len(spec.Participants))
		for i, p := range spec.Participants {
			ps[i] = p
		}
		specMap["participants"] = ps
	}
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": rtcv1alpha1.GroupVersion.String(),
		"kind":       "Meeting",
		"metadata": map[string]any{
			"name": name, "namespace": s.cfg.Namespace,
			"finalizers": []any{Finalizer},
		},
		"spec": specMap,
	}}
	if err := s.client.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(FieldManager), client.ForceOwnership); err != nil {
		return fmt.Errorf("apply Meeting %s/%s: %w", s.cfg.Namespace, name, err)
	}
	var m rtcv1alpha1.Meeting
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &m); err != nil {
		return fmt.Errorf("read applied Meeting %s: %w", name, err)
	}
	if got := normalizeUsers(m.Spec.Creator, m.Spec.Participants); !slices.Equal(lowerAll(got), lowerAll(spec.Participants)) {
		base := m.DeepCopy()
		m.Spec.Participants = spec.Participants
		if err := s.client.Patch(ctx, &m, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})); err != nil {
			return fmt.Errorf("set participants of Meeting %s: %w", name, err)
		}
	}
	s.recorder.Eventf(&m, nil, corev1.EventTypeNormal, "Applied", "Apply", "applied the API's meeting %s", sm.Meeting.Identity)
	c := clusterRow(&m, s.cfg.Now())
	c.Identity = strings.ToLower(sm.Meeting.Identity)
	if err := s.cfg.Store.SetClusterRow(ctx, c); err != nil {
		return err
	}
	return nil
}

func lowerAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = strings.ToLower(s)
	}
	return out
}

// deleteResource deletes the Meeting of identity called name (when it is
// that identity's), drops the API's finalizer when still present, and
// forgets the meeting_cluster row.
func (s *Syncer) deleteResource(ctx context.Context, identity, name string) error {
	var m rtcv1alpha1.Meeting
	err := s.reader.Get(ctx, client.ObjectKey{Namespace: s.cfg.Namespace, Name: name}, &m)
	if apierrors.IsNotFound(err) {
		return s.cfg.Store.DeleteClusterRow(ctx, identity)
	}
	if err != nil {
		return fmt.Errorf("get Meeting %s: %w", name, err)
	}
	if !strings.EqualFold(m.RoomIdentity(), identity) {
		// Not the meeting's resource: nothing of it is in the cluster.
		return s.cfg.Store.DeleteClusterRow(ctx, identity)
	}
	if m.DeletionTimestamp == nil {
		uid := m.UID
		if err := s.client.Delete(ctx, &m, client.Preconditions{UID: &uid}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete Meeting %s: %w", name, err)
		}
		if err := s.reader.Get(ctx, client.ObjectKeyFromObject(&m), &m); err != nil {
			if apierrors.IsNotFound(err) {
				return s.cfg.Store.DeleteClusterRow(ctx, identity)
			}
			return fmt.Errorf("get Meeting %s: %w", name, err)
		}
	}
	if err := s.dropFinalizer(ctx, &m); err != nil {
		return err
	}
	return s.cfg.Store.DeleteClusterRow(ctx, identity)
}

// dropFinalizer removes the API's finalizer from m, if there.
func (s *Syncer) dropFinalizer(ctx context.Context, m *rtcv1alpha1.Meeting) error {
	if !controllerutil.ContainsFinalizer(m, Finalizer) {
		return nil
	}
	base := m.DeepCopy()
	controllerutil.RemoveFinalizer(m, Finalizer)
	if err := s.client.Patch(ctx, m, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("remove finalizer of Meeting %s: %w", m.Name, err)
	}
	return nil
}

// nameOf is the resource name of a batch's meeting.
func (s *Syncer) nameOf(ctx context.Context, b store.OutboxBatch) string {
	if c, err := s.cfg.Store.ClusterRowOf(ctx, b.Identity); err == nil && c.Name != "" {
		return c.Name
	}
	if n := b.Name(); n != "" {
		return n
	}
	return ResourceName(b.Identity)
}
