package client

import (
	"testing"
	"time"
)

func TestLatencyBucket(t *testing.T) {
	for _, tc := range []struct {
		in   time.Duration
		want int64
	}{
		{-time.Microsecond, 0},
		{42 * time.Microsecond, 42},
		{123 * time.Microsecond, 120},
		{8765 * time.Microsecond, 8700},
		{459 * time.Millisecond, 450000},
		{7 * time.Second, 7000000},
	} {
		if got := latencyBucket(tc.in); got != tc.want {
			t.Errorf("latencyBucket(%s) = %d, want %d", tc.in, got, tc.want)
		}
	}
}

func TestMergeLoadResults(t *testing.T) {
	pubs := LoadResult{Publishers: 2, Tracks: 2, Window: 10 * time.Second, Sent: 2400, Received: 2400, Procs: 1,
		CPU: time.Second, NACKsSent: 1, HostRcvbufErrors: 5,
		LatencyHist: map[int64]uint64{1000: 99, 2000: 1}}
	a := LoadResult{Subscribers: 60, Window: 10 * time.Second, Received: 144000, Lost: 0, Procs: 1, CPU: 2 * time.Second,
		OwnSocketDrops: 3, NACKsSent: 10, HostRcvbufErrors: 7, LatencyHist: map[int64]uint64{1000: 1000}}
	b := LoadResult{Subscribers: 60, Window: 10 * time.Second, Received: 143990, Lost: 10, Procs: 1, CPU: 2 * time.Second,
		OwnSocketDrops: 4, NACKsSent: 20, HostRcvbufErrors: 6, LatencyHist: map[int64]uint64{50000: 900}}
	m := MergeLoadResults(pubs, a, b)
	if m.Procs != 3 || m.Subscribers != 120 || m.ExpectedPerTrack != 121 || m.Sent != 2400 {
		t.Fatalf("merged %+v", m)
	}
	if m.Received != 290390 || m.Lost != 10 || m.NACKsSent != 31 || m.OwnSocketDrops != 7 || m.CPU != 5*time.Second {
		t.Fatalf("sums: %+v", m)
	}
	if m.HostRcvbufErrors != 7 {
		t.Fatalf("host counters are the largest reading, got %d", m.HostRcvbufErrors)
	}
	if m.LatencySamples != 2000 || m.LatencyP50 != time.Millisecond || m.LatencyP99 != 50*time.Millisecond {
		t.Fatalf("latency p50 %s p99 %s of %d", m.LatencyP50, m.LatencyP99, m.LatencySamples)
	}
}
