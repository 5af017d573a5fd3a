package turn

import (
	"context"
	"log/slog"
	"runtime"
	"testing"
	"time"
)

func TestProcsDecide(t *testing.T) {
	p := Procs{Max: 4, ScaleUp: 0.7, ScaleDown: 0.35, Calm: 3}
	for _, tc := range []struct {
		current, calm int
		cores         float64
		want, calmOut int
	}{
		{1, 0, 0.1, 1, 0},
		{1, 0, 0.69, 1, 0},
		{1, 0, 0.71, 4, 0},
		{4, 0, 0.5, 4, 0}, // between the thresholds: stay
		{4, 1, 0.5, 4, 0}, // and the calm count restarts
		{4, 0, 0.2, 4, 1}, // calm, not yet long enough
		{4, 1, 0.2, 4, 2},
		{4, 2, 0.2, 1, 0}, // third calm sample: back to one P
		{4, 0, 3.5, 4, 0},
	} {
		got, calm := p.decide(tc.current, tc.calm, tc.cores)
		if got != tc.want || calm != tc.calmOut {
			t.Errorf("decide(%d, %d, %v) = %d, %d; want %d, %d", tc.current, tc.calm, tc.cores, got, calm, tc.want, tc.calmOut)
		}
	}
}

func TestProcsRunRestores(t *testing.T) {
	before := runtime.GOMAXPROCS(0)
	defer runtime.GOMAXPROCS(before)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	p := Procs{Max: 3, ScaleUp: 1e9, ScaleDown: 0, Interval: 5 * time.Millisecond, Calm: 1, Logger: slog.New(slog.DiscardHandler)}
	go func() { p.Run(ctx); close(done) }()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.GOMAXPROCS(0) != 1 {
		if time.Now().After(deadline) {
			t.Fatal("GOMAXPROCS never went to 1")
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	<-done
	if got := runtime.GOMAXPROCS(0); got != 3 {
		t.Fatalf("GOMAXPROCS after Run = %d, want Max 3", got)
	}
}

// TestServerAdaptiveProcsOptIn checks that a Server leaves GOMAXPROCS alone
// unless Config.AdaptiveProcs asks, and that Close stops the adaptation.
func TestServerAdaptiveProcsOptIn(t *testing.T) {
	if runtime.NumCPU() < 2 {
		t.Skip("one CPU: GOMAXPROCS has nothing to adapt")
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(runtime.NumCPU()))
	s, _ := startServer(t, nil)
	time.Sleep(50 * time.Millisecond)
	if got := runtime.GOMAXPROCS(0); got != runtime.NumCPU() {
		t.Fatalf("GOMAXPROCS = %d with AdaptiveProcs unset, want %d untouched", got, runtime.NumCPU())
	}
	_ = s.Close()

	s, _ = startServer(t, func(c *Config) { c.AdaptiveProcs = true })
	eventually(t, func() bool { return runtime.GOMAXPROCS(0) == 1 }, "one P while idle")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if got := runtime.GOMAXPROCS(0); got != runtime.NumCPU() {
		t.Fatalf("GOMAXPROCS after Close = %d, want %d", got, runtime.NumCPU())
	}
}
