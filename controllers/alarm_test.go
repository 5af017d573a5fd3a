package controllers

import (
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"
)

func TestAlarms(t *testing.T) {
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	clk := clocktesting.NewFakeClock(t0)
	a := newAlarms(clk)
	key := types.NamespacedName{Namespace: "ns", Name: "m"}
	other := types.NamespacedName{Namespace: "ns", Name: "n"}

	expect := func(want types.NamespacedName) {
		t.Helper()
		select {
		case ev := <-a.out:
			if got := (types.NamespacedName{Namespace: ev.Object.GetNamespace(), Name: ev.Object.GetName()}); got != want {
				t.Fatalf("woke %v, want %v", got, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no wake-up for %v", want)
		}
	}
	quiet := func() {
		t.Helper()
		select {
		case ev := <-a.out:
			t.Fatalf("unexpected wake-up of %s", ev.Object.GetName())
		case <-time.After(50 * time.Millisecond):
		}
	}

	a.set(key, t0.Add(time.Minute))
	a.set(key, t0.Add(time.Minute)) // the same time again: still one alarm
	if a.len() != 1 {
		t.Fatalf("%d alarms", a.len())
	}
	clk.Step(59 * time.Second)
	quiet()
	clk.Step(time.Second)
	expect(key)
	if a.len() != 0 {
		t.Fatalf("%d alarms after firing", a.len())
	}

	// A new time replaces the old one; zero cancels.
	a.set(key, t0.Add(2*time.Minute))
	a.set(key, t0.Add(3*time.Minute))
	a.set(other, t0.Add(2*time.Minute))
	a.set(other, time.Time{})
	clk.SetTime(t0.Add(2 * time.Minute))
	quiet()
	clk.SetTime(t0.Add(3 * time.Minute))
	expect(key)

	// A time already past fires at once.
	a.set(other, t0)
	expect(other)

	// After stop nothing fires and set is ignored.
	a.set(key, t0.Add(4*time.Minute))
	a.stop()
	a.set(other, t0.Add(4*time.Minute))
	clk.SetTime(t0.Add(5 * time.Minute))
	quiet()
	if a.len() != 0 {
		t.Fatalf("%d alarms after stop", a.len())
	}
	a.stop() // twice is fine
}
