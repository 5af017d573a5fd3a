package sfu

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the SFU's Prometheus metrics, all prefixed meeting_sfu_.
type metrics struct {
	rooms        prometheus.Gauge
	participants prometheus.Gauge
	tracks       prometheus.Gauge
	packets      prometheus.Counter
	bytes        prometheus.Counter
	nacks        prometheus.Counter
	retransmits  prometheus.Counter
	plisIn       prometheus.Counter
	plisOut      prometheus.Counter
	joins        *prometheus.CounterVec
	chat         prometheus.Counter

	// Retransmission budget and slow subscribers (budget.go, congestion.go).
	refusedVec        *prometheus.CounterVec
	refused           [numRefusals]prometheus.Counter
	congestion        *prometheus.CounterVec
	congestionDropped prometheus.Counter
}

// newMetrics registers the metrics with reg; nil registers them nowhere.
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	if reg == nil {
		reg = prometheus.NewRegistry() // a registry nobody reads
	}
	m := &metrics{
		rooms: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "meeting_sfu_rooms", Help: "Rooms with at least one participant."}),
		participants: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "meeting_sfu_participants", Help: "Participants connected."}),
		tracks: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "meeting_sfu_tracks", Help: "Published tracks being forwarded."}),
		packets: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meeting_sfu_forwarded_packets_total", Help: "RTP packets written to subscribers."}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meeting_sfu_forwarded_bytes_total", Help: "RTP payload bytes written to subscribers."}),
		nacks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meeting_sfu_nacks_total", Help: "NACK packets received from subscribers."}),
		retransmits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meeting_sfu_retransmitted_packets_total", Help: "Packets resent to subscribers after a NACK."}),
		plisIn: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meeting_sfu_keyframe_requests_total", Help: "PLI and FIR received from subscribers."}),
		plisOut: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meeting_sfu_plis_sent_total", Help: "PLIs sent to publishers after throttling."}),
		joins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meeting_sfu_joins_total", Help: "Join attempts by result."}, []string{"result"}),
		chat: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meeting_sfu_chat_messages_total", Help: "Chat messages relayed."}),
	}
	m.refusedVec = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "meeting_sfu_retransmits_refused_total", Help: "NACKed packets not resent, by reason."}, []string{"reason"})
	for r := refusal(1); r < numRefusals; r++ {
		m.refused[r] = m.refusedVec.WithLabelValues(r.String())
	}
	m.congestion = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "meeting_sfu_congestion_events_total", Help: "Video to a subscriber paused for falling behind, or resumed."}, []string{"state"})
	m.congestion.WithLabelValues(congestionPaused)
	m.congestion.WithLabelValues(congestionResumed)
	m.congestionDropped = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "meeting_sfu_congestion_dropped_packets_total", Help: "Packets not forwarded to subscribers whose video is paused."})
	for _, c := range []prometheus.Collector{m.rooms, m.participants, m.tracks, m.packets, m.bytes, m.nacks, m.retransmits,
		m.plisIn, m.plisOut, m.joins, m.chat, m.refusedVec, m.congestion, m.congestionDropped} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register sfu metrics: %w", err)
		}
	}
	return m, nil
}
