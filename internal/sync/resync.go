package sync

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	rtcv1alpha1 "meeting.dev/meeting/api/v1alpha1"
	"meeting.dev/meeting/internal/store"
)

// runResync runs a resync when leadership starts and every ResyncPeriod.
func (s *Syncer) runResync(ctx context.Context, mgr ctrl.Manager) error {
	log := logf.FromContext(ctx).WithName("sync-resync")
	ctx = logf.IntoContext(ctx, log)
	if !mgr.GetCache().WaitForCacheSync(ctx) {
		return nil // stopped before the cache synced
	}
	retry := time.Second
	for {
		wait := s.cfg.ResyncPeriod
		if err := s.Resync(ctx); err != nil && ctx.Err() == nil {
			// A failed resync runs again soon (1s, doubling), not a period later.
			wait = min(retry, wait)
			retry = min(2*retry, s.cfg.ResyncPeriod)
			log.Error(err, "resync failed; retrying", "in", wait)
		} else {
			retry = time.Second
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// synced is the UID of the resource that identity's row was last synced
// with ("" when none).
func synced(clusterRows map[string]store.ClusterRow, identity string) string {
	return clusterRows[identity].UID
}

// Resync compares every row with every Meeting of the namespace and
// converges both (docs/sync.md lists the rules). It counts what it finds by
// kind in meeting_sync_resync_drift_total.
func (s *Syncer) Resync(ctx context.Context) error {
	start := s.cfg.Now()
	defer func() { s.metrics.resyncDuration.Observe(max(s.cfg.Now().Sub(start).Seconds(), 0)) }()
	log := logf.FromContext(ctx)

	var list rtcv1alpha1.MeetingList
	if err := s.client.List(ctx, &list, client.InNamespace(s.cfg.Namespace)); err != nil {
		return fmt.Errorf("resync: list Meetings: %w", err)
	}
	rows, err := s.cfg.Store.SyncMeetings(ctx)
	if err != nil {
		return fmt.Errorf("resync: %w", err)
	}
	pending, err := s.cfg.Store.PendingIdentities(ctx)
	if err != nil {
		return fmt.Errorf("resync: %w", err)
	}
	clusterRows, err := s.cfg.Store.ClusterRows(ctx)
	if err != nil {
		return fmt.Errorf("resync: %w", err)
	}
	byIdentity := make(map[string]store.SyncedMeeting, len(rows))
	for _, r := range rows {
		byIdentity[r.Meeting.Identity] = r
	}
	resources := make(map[string]bool, len(list.Items))
	var errs []error
	for i := range list.Items {
		m := &list.Items[i]
		identity := strings.ToLower(m.RoomIdentity())
		resources[identity] = true
		if m.DeletionTimestamp != nil || pending[identity] {
			continue // the watcher deletes; pending changes go out first
		}
		row, hasRow := byIdentity[identity]
		ours := controllerutil.ContainsFinalizer(m, Finalizer)
		switch {
		case ours && !hasRow && synced(clusterRows, identity) != string(m.UID):
			if uid := synced(clusterRows, identity); uid != "" {
				continue // a duplicate of another resource's identity
			}
			// Our finalizer, but this resource never had a row (a manifest
			// copied from another Meeting, or one whose creator is unknown):
			// not a vanished row, so it is imported (or reported), never deleted.
			if _, err := s.fromCluster(ctx, m.DeepCopy()); err != nil && !apierrors.IsConflict(err) {
				errs = append(errs, err)
			}
		case ours && !hasRow:
			s.metrics.resyncDrift.WithLabelValues(driftRowVanished).Inc()
			log.Info("row vanished: deleting its Meeting", "identity", identity, "name", m.Name)
			uid := m.UID
			if err := s.client.Delete(ctx, m, client.Preconditions{UID: &uid}); err != nil && !apierrors.IsNotFound(err) {
				errs = append(errs, fmt.Errorf("delete Meeting %s: %w", m.Name, err))
			}
		case !ours:
			if _, err := s.fromCluster(ctx, m.DeepCopy()); err != nil && !apierrors.IsConflict(err) {
				errs = append(errs, err)
			}
			// Counted when it became a row (an unknown creator stays out).
			if _, err := s.cfg.Store.SyncMeeting(ctx, identity); err == nil {
				s.metrics.resyncDrift.WithLabelValues(driftImported).Inc()
			}
		case SpecDiffers(row, m):
			s.metrics.resyncDrift.WithLabelValues(driftSpecDiffers).Inc()
			if _, err := s.fromCluster(ctx, m.DeepCopy()); err != nil && !apierrors.IsConflict(err) {
				errs = append(errs, err)
			}
		}
	}
	for identity, r := range byIdentity {
		if resources[identity] || pending[identity] {
			continue
		}
		if r.Cluster == nil || r.Cluster.UID == "" {
			s.metrics.resyncDrift.WithLabelValues(driftNeverApplied).Inc()
			if err := s.cfg.Store.Enqueue(ctx, identity, store.OpApply); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		// Known to the cluster, gone from the cache: confirm with the API
		// server (the cache may not have seen a fresh apply yet).
		var m rtcv1alpha1.Meeting
		err := s.reader.Get(ctx, client.ObjectKey{Namespace: s.cfg.Namespace, Name: r.Cluster.Name}, &m)
		if err == nil && strings.EqualFold(m.RoomIdentity(), identity) {
			continue
		}
		if err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("get Meeting %s: %w", r.Cluster.Name, err))
			continue
		}
		s.metrics.resyncDrift.WithLabelValues(driftResourceVanished).Inc()
		log.Info("Meeting deleted in the cluster: deleting its row", "identity", identity, "name", r.Cluster.Name)
		if _, err := s.cfg.Store.DeleteFromCluster(ctx, identity); err != nil {
			errs = append(errs, err)
		}
	}
	// meeting_cluster rows of neither a row nor a resource are leftovers.
	for identity := range clusterRows {
		if _, ok := byIdentity[identity]; !ok && !resources[identity] && !pending[identity] {
			if err := s.cfg.Store.DeleteClusterRow(ctx, identity); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("resync: %w", err)
	}
	return nil
}
