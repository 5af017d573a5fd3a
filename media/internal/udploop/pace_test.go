package udploop

import (
	"testing"
	"time"
)

const ms = time.Millisecond

// TestPaceEnters: a parked loop takes a thread after two windows in a row at
// least half busy, not after one, nor after two split by a calmer one.
func TestPaceEnters(t *testing.T) {
	p := pace{paceLimits: defaultLimits}
	steps := []struct {
		from, to time.Duration
		switched bool
	}{
		{0, 20 * ms, false},         // 20 of 20 ms: no whole window yet
		{40 * ms, 50 * ms, false},   // 30 of 50 ms busy: one hot window
		{50 * ms, 70 * ms, false},   // 20 ms of 20: no whole window yet
		{96 * ms, 100 * ms, false},  // 24 of 50 ms: calm enough, the streak ends
		{100 * ms, 150 * ms, false}, // hot
		{150 * ms, 200 * ms, true},  // hot again: threaded
	}
	for i, s := range steps {
		if got := p.served(s.from, s.to); got != s.switched {
			t.Fatalf("step %d: served(%v, %v) = %v, want %v (%+v)", i, s.from, s.to, got, s.switched, p)
		}
	}
	if !p.threaded {
		t.Error("not threaded after switching")
	}
}

// TestPaceLeaves: a threaded loop parks after a second of windows under a
// fifth busy; a busier window starts the count again; a long idle spell
// counts as the windows it covers.
func TestPaceLeaves(t *testing.T) {
	p := pace{paceLimits: defaultLimits, threaded: true}
	now := time.Duration(0)
	serve := func(busy time.Duration) bool { // one window with busy in it
		now += p.window
		return p.served(now-busy, now)
	}
	for i := range defaultLimits.leaveWindows - 1 {
		if serve(5 * ms) {
			t.Fatalf("parked after %d calm windows", i+1)
		}
	}
	if serve(10 * ms) { // 20 %: not calm
		t.Fatal("parked on a window a fifth busy")
	}
	for i := range defaultLimits.leaveWindows - 1 {
		if serve(0) {
			t.Fatalf("parked after %d calm windows following a busy one", i+1)
		}
	}
	if !serve(ms) || p.threaded {
		t.Fatalf("still threaded after %d calm windows", defaultLimits.leaveWindows)
	}

	p = pace{paceLimits: defaultLimits, threaded: true}
	if !p.served(2*time.Second, 2*time.Second+ms) {
		t.Error("still threaded after two idle seconds")
	}
}
