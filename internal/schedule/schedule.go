// Package schedule decides, from a meeting's time window and the current time
// alone, which phase the meeting is in and when that next changes. It is pure:
// the operator and standalone mode both call it and do the effects themselves.
package schedule

import (
	"errors"
	"fmt"
	"time"
)

// Phase is the phase the clock puts a meeting in. Readiness of the media is
// not the clock's business: a meeting the clock calls Starting is Running to
// its caller once the media is available.
type Phase string

// The phases the clock decides.
const (
	// Scheduled: before BeginAt − LeadTime; no media should exist.
	Scheduled Phase = "Scheduled"
	// Starting: from BeginAt − LeadTime until EndAt; media should run.
	Starting Phase = "Starting"
	// Ending: from EndAt until EndAt + Grace; media stays for the grace period.
	Ending Phase = "Ending"
	// Ended: from EndAt + Grace on; media should be gone.
	Ended Phase = "Ended"
)

// ErrInvalidWindow is returned for a window whose end is not after its begin.
var ErrInvalidWindow = errors.New("schedule: endAt must be after beginAt")

// ErrInvalidPolicy is returned for a negative lead time or grace period.
var ErrInvalidPolicy = errors.New("schedule: lead time and grace must not be negative")

// Window is when a meeting takes place.
type Window struct {
	BeginAt time.Time
	EndAt   time.Time
}

// Policy is how far around the window the media runs.
type Policy struct {
	// LeadTime is how long before BeginAt the media comes up.
	LeadTime time.Duration
	// Grace is how long after EndAt the media stays up.
	Grace time.Duration
}

// Plan is the clock's decision at one instant.
type Plan struct {
	// Phase is the phase at that instant.
	Phase Phase
	// Next is when the phase changes next; zero once the meeting has Ended
	// (only an edit of the window changes an Ended meeting).
	Next time.Time
	// StartAt is BeginAt − LeadTime, when the media is due to come up.
	StartAt time.Time
}

// At returns the plan of the window w at instant now under policy p. Each
// boundary belongs to the later phase: at exactly BeginAt − LeadTime the media
// is due, at exactly EndAt the meeting is Ending.
func At(w Window, now time.Time, p Policy) (Plan, error) {
	if !w.EndAt.After(w.BeginAt) {
		return Plan{}, fmt.Errorf("%w (beginAt %s, endAt %s)", ErrInvalidWindow,
			w.BeginAt.Format(time.RFC3339), w.EndAt.Format(time.RFC3339))
	}
	if p.LeadTime < 0 || p.Grace < 0 {
		return Plan{}, fmt.Errorf("%w (lead %s, grace %s)", ErrInvalidPolicy, p.LeadTime, p.Grace)
	}
	plan := Plan{StartAt: w.BeginAt.Add(-p.LeadTime)}
	removeAt := w.EndAt.Add(p.Grace)
	switch {
	case now.Before(plan.StartAt):
		plan.Phase, plan.Next = Scheduled, plan.StartAt
	case now.Before(w.EndAt):
		plan.Phase, plan.Next = Starting, w.EndAt
	case now.Before(removeAt):
		plan.Phase, plan.Next = Ending, removeAt
	default:
		plan.Phase = Ended
	}
	return plan, nil
}
