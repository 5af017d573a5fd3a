package udploop

import "time"

// paceLimits are when a loop changes how it waits (see pace).
type paceLimits struct {
	window time.Duration // how often the loop weighs how busy it has been
	// A parked loop takes a thread of its own once it has spent at least
	// busyEnter of enterWindows windows in a row serving its sockets...
	busyEnter    float64
	enterWindows int
	// ...and parks again once it has spent under busyLeave of leaveWindows
	// windows in a row serving them.
	busyLeave    float64
	leaveWindows int
}

// defaultLimits: threaded after 100 ms at least half busy, parked again
// after a second under a fifth.
var defaultLimits = paceLimits{window: 50 * time.Millisecond, busyEnter: 0.5, enterWindows: 2, busyLeave: 0.2, leaveWindows: 20}

// pace chooses how a loop waits for its sockets, from how busy it has been.
//
// Parked, the default, a loop waits through Go's poller: no thread is held,
// and when one loop makes another's socket readable (the second hop of a
// relayed datagram), the thread that has finished serving one loop often
// serves the other next, without any thread being woken. That is the
// cheapest way to relay, but it serves all the loops on about one thread,
// and under CPU contention a process gets a share of the CPU per runnable
// thread. So a loop that stays busy takes a thread of its own: it waits in
// epoll_wait, and the kernel wakes its thread, as coturn's relay threads do.
// A calm second parks it again.
type pace struct {
	paceLimits
	threaded bool
	start    time.Duration // of the current window, on the loop's clock
	busy     time.Duration // spent serving in the current window
	streak   int           // windows in a row past the threshold for switching
}

// served records that the loop served its sockets from from to to (on its
// clock; successive calls do not overlap) and reports whether it must now
// wait the other way (threaded has changed).
func (p *pace) served(from, to time.Duration) bool {
	p.busy += to - max(from, p.start)
	span := to - p.start
	if span < p.window {
		return false
	}
	share := float64(p.busy) / float64(span)
	windows := int(span / p.window) // a long quiet span counts as the windows it covers
	p.start, p.busy = to, 0
	if p.threaded {
		if share >= p.busyLeave {
			p.streak = 0
			return false
		}
		p.streak += windows
		if p.streak < p.leaveWindows {
			return false
		}
	} else {
		if share < p.busyEnter {
			p.streak = 0
			return false
		}
		p.streak++
		if p.streak < p.enterWindows {
			return false
		}
	}
	p.threaded, p.streak = !p.threaded, 0
	return true
}
