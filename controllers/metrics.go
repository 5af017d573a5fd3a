package controllers

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the operator's own Prometheus metrics, next to
// controller-runtime's.
type metrics struct {
	// startLag is how late a room's media was brought up: from
	// beginAt − lead time until its children were created.
	startLag prometheus.Histogram
	// transitions counts phase transitions by the phase entered.
	transitions *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		startLag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "meeting_media_start_lag_seconds",
			Help:    "Time from beginAt minus the lead time until the room's Secret, Services and Deployments were created.",
			Buckets: []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60},
		}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meeting_phase_transitions_total",
			Help: "Meeting phase transitions, by the phase entered.",
		}, []string{"phase"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.startLag, m.transitions} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register metrics (one reconciler per registry): %w", err)
		}
	}
	return m, nil
}
