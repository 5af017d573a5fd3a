package schedule

import (
	"errors"
	"testing"
	"time"
)

func TestAt(t *testing.T) {
	begin := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	end := begin.Add(time.Hour)
	win := Window{BeginAt: begin, EndAt: end}
	pol := Policy{LeadTime: time.Minute, Grace: 2 * time.Minute}
	startAt, removeAt := begin.Add(-time.Minute), end.Add(2*time.Minute)
	tokyo := time.FixedZone("JST", 9*3600)

	tests := []struct {
		name      string
		win       Window
		now       time.Time
		pol       Policy
		wantPhase Phase
		wantNext  time.Time
		wantErr   error
	}{
		{name: "long before", win: win, now: begin.Add(-24 * time.Hour), pol: pol, wantPhase: Scheduled, wantNext: startAt},
		{name: "just before lead", win: win, now: startAt.Add(-time.Nanosecond), pol: pol, wantPhase: Scheduled, wantNext: startAt},
		{name: "at lead boundary", win: win, now: startAt, pol: pol, wantPhase: Starting, wantNext: end},
		{name: "in lead time", win: win, now: begin.Add(-30 * time.Second), pol: pol, wantPhase: Starting, wantNext: end},
		{name: "during", win: win, now: begin.Add(30 * time.Minute), pol: pol, wantPhase: Starting, wantNext: end},
		{name: "at end", win: win, now: end, pol: pol, wantPhase: Ending, wantNext: removeAt},
		{name: "in grace", win: win, now: end.Add(time.Minute), pol: pol, wantPhase: Ending, wantNext: removeAt},
		{name: "at grace end", win: win, now: removeAt, pol: pol, wantPhase: Ended},
		{name: "long after", win: win, now: end.Add(48 * time.Hour), pol: pol, wantPhase: Ended},
		{name: "no lead no grace: before", win: win, now: begin.Add(-time.Nanosecond), pol: Policy{}, wantPhase: Scheduled, wantNext: begin},
		{name: "no lead no grace: at end", win: win, now: end, pol: Policy{}, wantPhase: Ended},
		{name: "created already running", win: Window{BeginAt: begin.Add(-time.Hour), EndAt: end}, now: begin, pol: pol, wantPhase: Starting, wantNext: end},
		// Edits: the caller plans again with the new window.
		{name: "edit: end extended while ending", win: Window{BeginAt: begin, EndAt: end.Add(time.Hour)}, now: end.Add(time.Minute), pol: pol, wantPhase: Starting, wantNext: end.Add(time.Hour)},
		{name: "edit: end extended after ended", win: Window{BeginAt: begin, EndAt: end.Add(time.Hour)}, now: removeAt, pol: pol, wantPhase: Starting, wantNext: end.Add(time.Hour)},
		{name: "edit: begin postponed while starting", win: Window{BeginAt: begin.Add(time.Hour), EndAt: end.Add(time.Hour)}, now: begin, pol: pol, wantPhase: Scheduled, wantNext: startAt.Add(time.Hour)},
		{name: "edit: end brought forward into the past", win: Window{BeginAt: begin, EndAt: begin.Add(time.Minute)}, now: begin.Add(30 * time.Minute), pol: pol, wantPhase: Ended},
		// Clock skew: an early wake-up finds the same phase and a short remainder;
		// a clock in another zone decides the same instant the same way.
		{name: "skew: woken 5ms early", win: win, now: startAt.Add(-5 * time.Millisecond), pol: pol, wantPhase: Scheduled, wantNext: startAt},
		{name: "skew: woken late", win: win, now: startAt.Add(3 * time.Second), pol: pol, wantPhase: Starting, wantNext: end},
		{name: "skew: other time zone", win: win, now: begin.In(tokyo), pol: pol, wantPhase: Starting, wantNext: end},
		{name: "skew: window in other zone", win: Window{BeginAt: begin.In(tokyo), EndAt: end.In(tokyo)}, now: end.Add(time.Second), pol: pol, wantPhase: Ending, wantNext: removeAt},
		// Bad input.
		{name: "end before begin", win: Window{BeginAt: end, EndAt: begin}, now: begin, pol: pol, wantErr: ErrInvalidWindow},
		{name: "end equals begin", win: Window{BeginAt: begin, EndAt: begin}, now: begin, pol: pol, wantErr: ErrInvalidWindow},
		{name: "zero window", win: Window{}, now: begin, pol: pol, wantErr: ErrInvalidWindow},
		{name: "negative lead", win: win, now: begin, pol: Policy{LeadTime: -time.Second}, wantErr: ErrInvalidPolicy},
		{name: "negative grace", win: win, now: begin, pol: Policy{Grace: -time.Second}, wantErr: ErrInvalidPolicy},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := At(tt.win, tt.now, tt.pol)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if got.Phase != tt.wantPhase {
				t.Errorf("phase = %s, want %s", got.Phase, tt.wantPhase)
			}
			if !got.Next.Equal(tt.wantNext) {
				t.Errorf("next = %v, want %v", got.Next, tt.wantNext)
			}
			if !got.Next.IsZero() && !got.Next.After(tt.now) {
				t.Errorf("next %v is not after now %v", got.Next, tt.now)
			}
			if !got.StartAt.Equal(tt.win.BeginAt.Add(-tt.pol.LeadTime)) {
				t.Errorf("startAt %v does not match the window", got.StartAt)
			}
		})
	}
}

// TestAtWalk steps a clock through a window and checks that following Next
// visits every phase in order and ends.
func TestAtWalk(t *testing.T) {
	begin := time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC)
	win := Window{BeginAt: begin, EndAt: begin.Add(30 * time.Minute)}
	pol := Policy{LeadTime: time.Minute, Grace: time.Minute}
	now := begin.Add(-time.Hour)
	var seen []Phase
	for i := 0; i < 10; i++ {
		p, err := At(win, now, pol)
		if err != nil {
			t.Fatal(err)
		}
		seen = append(seen, p.Phase)
		if p.Next.IsZero() {
			break
		}
		now = p.Next
	}
	want := []Phase{Scheduled, Starting, Ending, Ended}
	if len(seen) != len(want) {
		t.Fatalf("phases %v, want %v", seen, want)
	}
	for i := range want {
		if seen[i] != want[i] {
			t.Fatalf("phases %v, want %v", seen, want)
		}
	}
}
