package sync

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the sync's Prometheus metrics (prefix meeting_sync_).
type metrics struct {
	outboxDepth     prometheus.Gauge
	outboxOldestAge prometheus.Gauge
	applies         *prometheus.CounterVec
	resyncDuration  prometheus.Histogram
	resyncDrift     *prometheus.CounterVec
	lag             *prometheus.HistogramVec
}

// Drift kinds the resync counts.
const (
	driftRowVanished      = "row_vanished"      // resource with our finalizer, no row: resource deleted
	driftImported         = "imported"          // resource without our finalizer: imported
	driftResourceVanished = "resource_vanished" // row known to the cluster, no resource: row deleted
	driftNeverApplied     = "never_applied"     // row never in the cluster: apply enqueued
	driftSpecDiffers      = "spec_differs"      // both exist, spec differs: row follows resource
)

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		outboxDepth: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "meeting_sync_outbox_depth", Help: "REST changes waiting in the outbox to be applied to the cluster."}),
		outboxOldestAge: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "meeting_sync_outbox_oldest_age_seconds", Help: "Age of the oldest outbox entry (0 when empty)."}),
		applies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meeting_sync_applies_total", Help: "Outbox entries carried to the cluster, by op (apply, delete) and result (ok, error)."},
			[]string{"op", "result"}),
		resyncDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "meeting_sync_resync_duration_seconds", Help: "Duration of a full resync.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 12)}),
		resyncDrift: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meeting_sync_resync_drift_total", Help: "Differences a resync found and converged, by kind."},
			[]string{"kind"}),
		lag: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "meeting_sync_lag_seconds", Help: "Time from a change on one side to its arrival on the other (to_cluster: REST write to apply; from_cluster: resource write to row).",
			Buckets: []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}},
			[]string{"direction"}),
	}
	for _, op := range []string{"apply", "delete"} {
		for _, r := range []string{"ok", "error"} {
			m.applies.WithLabelValues(op, r)
		}
	}
	for _, k := range []string{driftRowVanished, driftImported, driftResourceVanished, driftNeverApplied, driftSpecDiffers} {
		m.resyncDrift.WithLabelValues(k)
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.outboxDepth, m.outboxOldestAge, m.applies, m.resyncDuration, m.resyncDrift, m.lag} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return nil, fmt.Errorf("sync metrics: %w (one Setup per registry)", err)
			}
			return nil, fmt.Errorf("sync metrics: %w", err)
		}
	}
	return m, nil
}
