package client

import (
	"log/slog"
	"math"
	"slices"
	"time"

	"meeting.dev/meeting/media/internal/udpstats"
)

// ownFigures are the load tool's own counters at one moment.
type ownFigures struct {
	nacks, nacked uint64
	drops         uint64
	host          udpstats.Host
	cpu           udpstats.CPU
}

func ownSnapshot(clients []*Client, log *slog.Logger) ownFigures {
	var f ownFigures
	for _, c := range clients {
		if c != nil {
			n, p := c.NACKsSent()
			f.nacks += n
			f.nacked += p
		}
	}
	var err error
	if f.drops, err = udpstats.OwnDrops(); err != nil {
		log.Warn("own socket drops unknown", "err", err)
	}
	if f.host, err = udpstats.HostCounters(); err != nil {
		log.Warn("host UDP counters unknown", "err", err)
	}
	f.cpu = udpstats.SelfCPU()
	return f
}

func (f ownFigures) sub(o ownFigures) ownFigures {
	return ownFigures{nacks: f.nacks - o.nacks, nacked: f.nacked - o.nacked, drops: f.drops - o.drops,
		host: f.host.Sub(o.host), cpu: f.cpu.Sub(o.cpu)}
}

func (f ownFigures) into(r *LoadResult) {
	r.NACKsSent, r.NACKedPackets, r.OwnSocketDrops = f.nacks, f.nacked, f.drops
	r.HostInErrors, r.HostRcvbufErrors = f.host.InErrors, f.host.RcvbufErrors
	r.CPU, r.CPUUser = f.cpu.Total(), f.cpu.User
}

// latencyBucket rounds a latency down to two significant digits of
// microseconds: a histogram of at most ~90 buckets per decade.
func latencyBucket(d time.Duration) int64 {
	us := d.Microseconds()
	if us < 100 {
		return max(us, 0)
	}
	p := int64(math.Pow10(int(math.Log10(float64(us))) - 1))
	return us / p * p
}

func latencyHist(lat []time.Duration) map[int64]uint64 {
	h := make(map[int64]uint64)
	for _, d := range lat {
		h[latencyBucket(d)]++
	}
	return h
}

// histQuantile returns the latency at quantile q of h, and the samples.
func histQuantile(h map[int64]uint64, q float64) (time.Duration, uint64) {
	keys := make([]int64, 0, len(h))
	var n uint64
	for k, c := range h {
		keys = append(keys, k)
		n += c
	}
	if n == 0 {
		return 0, 0
	}
	slices.Sort(keys)
	rank := uint64(q * float64(n))
	if rank >= n {
		rank = n - 1
	}
	var seen uint64
	for _, k := range keys {
		seen += h[k]
		if seen > rank {
			return time.Duration(k) * time.Microsecond, n
		}
	}
	return time.Duration(keys[len(keys)-1]) * time.Microsecond, n
}

// MergeLoadResults merges the results of one load test spread over
// processes: first the process with the publishers, then those with
// subscribers only (LoadConfig.ExternalPublishers). Received, lost, the
// load tool's own counters and CPU add up; the host's counters, read by
// every process, are the largest; latencies come from the merged
// histograms (LoadConfig.Histogram), to two significant digits.
func MergeLoadResults(rs ...LoadResult) LoadResult {
	if len(rs) == 0 {
		return LoadResult{}
	}
	m := rs[0]
	m.Procs = 0
	m.Subscribers = 0
	m.Received, m.Lost, m.NACKsSent, m.NACKedPackets, m.OwnSocketDrops, m.CPU, m.CPUUser = 0, 0, 0, 0, 0, 0, 0
	hist := map[int64]uint64{}
	for _, r := range rs {
		m.Procs += r.Procs
		m.Subscribers += r.Subscribers
		m.Received += r.Received
		m.Lost += r.Lost
		m.NACKsSent += r.NACKsSent
		m.NACKedPackets += r.NACKedPackets
		m.OwnSocketDrops += r.OwnSocketDrops
		m.CPU += r.CPU
		m.CPUUser += r.CPUUser
		m.HostInErrors = max(m.HostInErrors, r.HostInErrors)
		m.HostRcvbufErrors = max(m.HostRcvbufErrors, r.HostRcvbufErrors)
		m.LatencyMax = max(m.LatencyMax, r.LatencyMax)
		for k, c := range r.LatencyHist {
			hist[k] += c
		}
	}
	m.ExpectedPerTrack = m.Publishers + m.Subscribers - 1
	m.LossRatio = 0
	if total := m.Received + m.Lost; total > 0 {
		m.LossRatio = float64(m.Lost) / float64(total)
	}
	if m.Window > 0 {
		m.ReceivedPerSec = float64(m.Received) / m.Window.Seconds()
	}
	var n uint64
	m.LatencyP50, n = histQuantile(hist, 0.50)
	m.LatencyP99, _ = histQuantile(hist, 0.99)
	m.LatencySamples = int(n)
	m.LatencyHist = nil
	return m
}
