package turn

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the server's Prometheus series, all prefixed meeting_turn_.
type metrics struct {
	allocations       prometheus.Gauge
	allocationsTotal  prometheus.Counter
	quotaRefusals     *prometheus.CounterVec
	authFailures      *prometheus.CounterVec
	permissionDenials prometheus.Counter
	connsClosed       *prometheus.CounterVec

	toPeerPackets, toPeerBytes     prometheus.Counter
	toClientPackets, toClientBytes prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	packets := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "meeting_turn_relayed_packets_total",
		Help: "Datagrams relayed, by direction (to_peer: from a client out of its relay address; to_client: from a peer back to the client).",
	}, []string{"direction"})
	bytes := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "meeting_turn_relayed_bytes_total",
		Help: "Payload bytes relayed, by direction.",
	}, []string{"direction"})
	var err error
	if packets, err = register(reg, packets); err != nil {
		return nil, err
	}
	if bytes, err = register(reg, bytes); err != nil {
		return nil, err
	}
	m := &metrics{
		allocations: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "meeting_turn_allocations",
			Help: "Allocations (relay sockets) open now.",
		}),
		allocationsTotal: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meeting_turn_allocations_total",
			Help: "Allocations created since start.",
		}),
		quotaRefusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meeting_turn_quota_refusals_total",
			Help: "Allocate requests refused with 486 Allocation Quota Reached, by quota (user or total).",
		}, []string{"quota"}),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meeting_turn_auth_failures_total",
			Help: "Requests whose credentials were refused, by reason (malformed, expired, realm, integrity).",
		}, []string{"reason"}),
		permissionDenials: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meeting_turn_permission_denials_total",
			Help: "Peer addresses refused by the peer policy (CreatePermission and ChannelBind answered 403, Send indications dropped).",
		}),
		connsClosed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meeting_turn_connections_closed_total",
			Help: "TCP and TLS client connections the server closed, by reason (unauthenticated: no authenticated request in time; idle: silent, or not reading, too long; source_limit: over the per-source cap).",
		}, []string{"reason"}),
		toPeerPackets:   packets.WithLabelValues("to_peer"),
		toPeerBytes:     bytes.WithLabelValues("to_peer"),
		toClientPackets: packets.WithLabelValues("to_client"),
		toClientBytes:   bytes.WithLabelValues("to_client"),
	}
	if m.allocations, err = register(reg, m.allocations); err != nil {
		return nil, err
	}
	if m.allocationsTotal, err = register(reg, m.allocationsTotal); err != nil {
		return nil, err
	}
	if m.quotaRefusals, err = register(reg, m.quotaRefusals); err != nil {
		return nil, err
	}
	if m.authFailures, err = register(reg, m.authFailures); err != nil {
		return nil, err
	}
	if m.permissionDenials, err = register(reg, m.permissionDenials); err != nil {
		return nil, err
	}
	if m.connsClosed, err = register(reg, m.connsClosed); err != nil {
		return nil, err
	}
	return m, nil
}

// register registers c with reg, or returns the collector of the same
// series already there: Servers that share a Registerer share the series,
// which then count for all of them together (the allocations gauge is the
// sum, as each Server adds and removes its own).
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	if err == nil {
		return c, nil
	}
	var dup prometheus.AlreadyRegisteredError
	if errors.As(err, &dup) {
		if existing, ok := dup.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	return c, fmt.Errorf("register turn metrics: %w", err)
}

// authFailure counts a refused credential by the reason err gives.
func (m *metrics) authFailure(err error) {
	reason := "integrity"
	switch {
	case errors.Is(err, ErrMalformedUsername):
		reason = "malformed"
	case errors.Is(err, ErrExpired):
		reason = "expired"
	case errors.Is(err, ErrWrongRealm):
		reason = "realm"
	}
	m.authFailures.WithLabelValues(reason).Inc()
}

// quotaRefusal counts an Allocate refused over quota.
func (m *metrics) quotaRefusal(err error) {
	q := "user"
	if errors.Is(err, ErrTotalQuota) {
		q = "total"
	}
	m.quotaRefusals.WithLabelValues(q).Inc()
}

// connClosed counts a client connection the server closed, by reason.
func (m *metrics) connClosed(reason string) {
	m.connsClosed.WithLabelValues(reason).Inc()
}
