package controllers

import (
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"

	rtcv1alpha1 "meeting.dev/meeting/api/v1alpha1"
)

// alarms wakes the reconciler of a Meeting when its schedule says the phase
// changes. Timers run on the injected clock, so a test that steps a fake
// clock drives the reconciler exactly as time passing would.
type alarms struct {
	clock clock.WithDelayedExecution
	out   chan event.GenericEvent

	mu      sync.Mutex
	timers  map[types.NamespacedName]alarm
	stopped bool
	done    chan struct{}
}

type alarm struct {
	at    time.Time
	timer clock.Timer
}

func newAlarms(c clock.WithDelayedExecution) *alarms {
	return &alarms{
		clock:  c,
		out:    make(chan event.GenericEvent, 1024),
		timers: map[types.NamespacedName]alarm{},
		done:   make(chan struct{}),
	}
}

// set arranges one wake-up of key at time at, replacing an earlier one; a
// zero time cancels it.
func (a *alarms) set(key types.NamespacedName, at time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.stopped {
		return
	}
	if old, ok := a.timers[key]; ok {
		if old.at.Equal(at) {
			return
		}
		old.timer.Stop()
		delete(a.timers, key)
	}
	if at.IsZero() {
		return
	}
	d := at.Sub(a.clock.Now())
	if d <= 0 {
		// Already due (the clock moved on since the caller read it). Not every
		// clock fires a timer of zero duration by itself: wake now.
		go a.fire(key, at)
		return
	}
	t := a.clock.AfterFunc(d, func() { a.fire(key, at) })
	a.timers[key] = alarm{at: at, timer: t}
}

func (a *alarms) fire(key types.NamespacedName, at time.Time) {
	a.mu.Lock()
	if cur, ok := a.timers[key]; ok && cur.at.Equal(at) {
		delete(a.timers, key)
	}
	a.mu.Unlock()
	m := &rtcv1alpha1.Meeting{}
	m.Namespace, m.Name = key.Namespace, key.Name
	select {
	case a.out <- event.GenericEvent{Object: client.Object(m)}:
	case <-a.done:
	}
}

// stop cancels every alarm; later calls to set do nothing.
func (a *alarms) stop() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.stopped {
		return
	}
	a.stopped = true
	for k, t := range a.timers {
		t.timer.Stop()
		delete(a.timers, k)
	}
	close(a.done)
}

// len is the number of pending alarms.
func (a *alarms) len() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.timers)
}
