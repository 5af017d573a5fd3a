package sfu

import (
	"sync"
	"sync/atomic"
	"time"
)

// Retransmission limits (docs/sfu.md, "Retransmission budget"). A NACK is
// a request, not an order: when receivers fall behind, answering every NACK
// multiplies the traffic that made them fall behind.
const (
	// retransmitMaxAge: a packet that arrived from its publisher longer ago
	// is not resent. Ten times a LAN round trip plus a few frames; a
	// receiver waiting longer is better served by the next keyframe.
	retransmitMaxAge = 300 * time.Millisecond
	// maxResends is how often one packet is resent to one subscriber.
	maxResends = 1

	// Per subscriber binding (one track to one subscriber): credit of
	// bindingShare of the packets sent to it, holding at most bindingBurst
	// (a lost keyframe of the load tool's 16 kB is 15 packets), and at most
	// bindingRate packets a second.
	bindingShare = 0.10
	bindingBurst = 32
	bindingRate  = 100

	// In total (one SFU, every room): credit of totalShare of every packet
	// forwarded, holding at most totalBurst, and at most totalRate packets
	// a second (about 1.5 % of a core at the SFU's cost per packet).
	totalShare = 0.05
	totalBurst = 512
	totalRate  = 5000
)

// refusal says why a NACKed packet was not resent.
type refusal int

const (
	resend            refusal = iota // not refused
	refusedNotSent                   // never sent to this subscriber (paused, waiting for a keyframe, or not yet)
	refusedNotCached                 // not in the cache: never received, or evicted
	refusedTooOld                    // arrived longer than retransmitMaxAge ago
	refusedRepeated                  // already resent maxResends times to this subscriber
	refusedSubscriber                // over the binding's budget
	refusedTotal                     // over the SFU's budget
	numRefusals
)

func (r refusal) String() string {
	switch r {
	case refusedNotSent:
		return "not_sent"
	case refusedNotCached:
		return "not_cached"
	case refusedTooOld:
		return "too_old"
	case refusedRepeated:
		return "repeated"
	case refusedSubscriber:
		return "subscriber_budget"
	case refusedTotal:
		return "total_budget"
	}
	return "resend"
}

// bucket is a token bucket with two fillings: share tokens per packet
// counted (what was forwarded) up to burst, and rate tokens per second up
// to rate (one second's worth). A retransmission takes one of each.
type bucket struct {
	share, burst, rate float64

	credit    float64 // share tokens
	tokens    float64 // rate tokens
	lastCount uint64
	last      time.Time
	started   bool
}

func newBucket(share, burst, rate float64) bucket {
	return bucket{share: share, burst: burst, rate: rate}
}

// refill adds the tokens earned since the last call: count is the running
// total of packets forwarded, now the time.
func (b *bucket) refill(count uint64, now time.Time) {
	if !b.started { // full: a subscriber that just joined may well miss part of its first keyframe
		b.started, b.last, b.tokens, b.credit = true, now, b.rate, b.burst
	}
	if count > b.lastCount {
		b.credit = min(b.burst, b.credit+b.share*float64(count-b.lastCount))
		b.lastCount = count
	}
	if dt := now.Sub(b.last); dt > 0 {
		b.tokens = min(b.rate, b.tokens+b.rate*dt.Seconds())
		b.last = now
	}
}

func (b *bucket) has() bool { return b.credit >= 1 && b.tokens >= 1 }

func (b *bucket) take() { b.credit--; b.tokens-- }

// resendMark remembers how often a packet was resent; n == 0 is empty.
type resendMark struct {
	seq uint16
	n   uint8
}

// retransmitBudget is one binding's: its bucket and which recent packets
// it was resent, keyed like the cache (the one-copy-per-track cache keeps
// cacheSize packets, so no older one can be asked for again).
type retransmitBudget struct {
	mu     sync.Mutex
	b      bucket
	init   bool
	resent [cacheSize]resendMark
}

// allow decides whether packet seq (the publisher's numbering) may be
// resent to this binding, sent being the packets forwarded to it so far,
// and takes the tokens when it may. total may be nil (no total budget).
func (r *retransmitBudget) allow(seq uint16, sent uint64, now time.Time, total *totalBudget) refusal {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.init {
		r.init, r.b = true, newBucket(bindingShare, bindingBurst, bindingRate)
	}
	m := &r.resent[seq%cacheSize]
	if m.n > 0 && m.seq == seq && m.n >= maxResends {
		return refusedRepeated
	}
	r.b.refill(sent, now)
	if !r.b.has() {
		return refusedSubscriber
	}
	if !total.take(now) {
		return refusedTotal
	}
	r.b.take()
	if m.n == 0 || m.seq != seq {
		*m = resendMark{seq: seq}
	}
	m.n++
	return resend
}

// totalBudget is the SFU's, shared by every binding of every room.
type totalBudget struct {
	forwarded atomic.Uint64 // packets forwarded, counted by publishedTrack.write

	mu sync.Mutex
	b  bucket
}

func newTotalBudget() *totalBudget {
	return &totalBudget{b: newBucket(totalShare, totalBurst, totalRate)}
}

// take takes one retransmission's tokens if there are; a nil budget
// always has.
func (t *totalBudget) take(now time.Time) bool {
	if t == nil {
		return true
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b.refill(t.forwarded.Load(), now)
	if !t.b.has() {
		return false
	}
	t.b.take()
	return true
}
