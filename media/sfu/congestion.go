package sfu

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"

	"meeting.dev/meeting/media/signal"
)

// Slow-subscriber isolation (docs/sfu.md, "Slow subscribers"). A subscriber
// whose receiver reports say it loses packets, or receives far fewer than it
// is sent, has the video it falls behind on paused: nothing of that track is
// forwarded to it for a hold time, after which the track resumes at the next
// keyframe (asked for, within the keyframe throttle), with sequence numbers
// continuing where they stopped so that the pause is no loss to the
// receiver. Nobody else's forwarding changes. Audio is never paused.
const (
	// congestionLoss is the fraction lost (in 1/256) of a receiver report
	// that counts as falling behind: 26/256 ≈ 10 %.
	congestionLoss = 26
	// congestionMinSent: a report counts as stalled when at least this many
	// packets were forwarded since the previous one and the receiver's
	// highest sequence number moved by less than half of them.
	congestionMinSent = 20
	// congestionReports is how many such reports in a row pause the video.
	congestionReports = 2
	// The first pause holds for holdMin; a pause within calmAfter of the
	// last resume holds twice the previous, up to holdMax.
	holdMin   = 2 * time.Second
	holdMax   = 16 * time.Second
	calmAfter = 10 * time.Second
)

// Congestion states sent in signal.CongestedTrack.State.
const (
	congestionPaused  = "paused"
	congestionResumed = "resumed"
)

// congestionChange is what slowDetector.observe decides.
type congestionChange int

const (
	keep congestionChange = iota
	pause
	resume
)

// slowDetector follows one binding's receiver reports. It is pure: the
// caller feeds it reports and acts on the changes it returns.
type slowDetector struct {
	bad       int // reports in a row that count as falling behind
	paused    bool
	until     time.Time     // end of the pause
	hold      time.Duration // of the last pause
	resumedAt time.Time
	reason    string // of the last pause: "loss" or "stalled"

	based   bool // sent and highest hold the previous report's
	sent    uint64
	highest uint32
}

// observe takes a receiver report that arrived at at: the receiver's
// fraction lost (1/256) and extended highest sequence number, and sent,
// the packets forwarded to the binding so far.
func (d *slowDetector) observe(at time.Time, fractionLost uint8, highest uint32, sent uint64) congestionChange {
	if d.paused {
		if at.Before(d.until) {
			return keep
		}
		d.paused, d.resumedAt, d.based, d.bad = false, at, false, 0
		return resume
	}
	if !d.based {
		d.based, d.sent, d.highest = true, sent, highest
		return keep
	}
	ds := sent - d.sent
	dh := uint64(0)
	if diff := int32(highest - d.highest); diff > 0 {
		dh = uint64(diff)
	}
	d.sent, d.highest = sent, highest
	reason := ""
	switch {
	case fractionLost >= congestionLoss:
		reason = "loss"
	case ds >= congestionMinSent && 2*dh < ds:
		reason = "stalled"
	}
	if reason == "" {
		d.bad = 0
		return keep
	}
	if d.bad++; d.bad < congestionReports {
		return keep
	}
	d.bad = 0
	if d.hold == 0 || d.resumedAt.IsZero() || at.Sub(d.resumedAt) >= calmAfter {
		d.hold = holdMin
	} else {
		d.hold = min(2*d.hold, holdMax)
	}
	d.paused, d.until, d.reason = true, at.Add(d.hold), reason
	return pause
}

// flow is a binding's sending state beyond pion's: the sequence numbers
// the subscriber sees, its retransmission budget and its congestion state.
type flow struct {
	// Touched by the forwarding goroutine only.
	off     uint16 // publisher's sequence number - forwarded one
	lastOut uint16 // forwarded sequence number of the last packet sent
	sentAny bool

	sent     atomic.Uint64 // packets forwarded to the binding
	last     atomic.Uint32 // publisher's sequence number of the last packet forwarded
	window   atomic.Uint64 // 1<<32 | off<<16 | first packet forwarded since the (re)start
	paused   atomic.Bool
	waitFrom atomic.Int64 // unix ns: waiting for a keyframe since (after a pause)

	budget retransmitBudget

	cmu    sync.Mutex
	detect slowDetector
}

// restart is called by the forwarding goroutine for the first packet (a
// keyframe's) forwarded after the binding was bound or paused: forwarded
// sequence numbers continue from the last one sent.
func (f *flow) restart(seq uint16) {
	if f.sentAny {
		f.off = seq - (f.lastOut + 1)
	}
	f.window.Store(1<<32 | uint64(f.off)<<16 | uint64(seq))
}

// sentOne records a packet forwarded: seq the publisher's number, out the
// subscriber's. A late packet (the publisher's retransmission of one the
// SFU missed) does not move the last one back.
func (f *flow) sentOne(seq, out uint16) {
	if !f.sentAny || int16(out-f.lastOut) > 0 {
		f.lastOut, f.sentAny = out, true
		f.last.Store(uint32(seq))
	}
	f.sent.Add(1)
}

// original maps a sequence number the subscriber NACKed to the publisher's,
// if that packet was forwarded to it since its last (re)start.
func (f *flow) original(out uint16) (uint16, bool) {
	w := f.window.Load()
	if w&(1<<32) == 0 {
		return 0, false
	}
	off, start := uint16(w>>16), uint16(w)
	seq := out + off
	last := uint16(f.last.Load())
	if int16(seq-start) < 0 || int16(last-seq) < 0 {
		return 0, false
	}
	return seq, true
}

// waitingSince is when the binding began to wait for a keyframe: when it
// was bound, or when it resumed after a pause.
func (b *binding) waitingSince() time.Time {
	if ns := b.waitFrom.Load(); ns != 0 {
		if t := time.Unix(0, ns); t.After(b.bound) {
			return t
		}
	}
	return b.bound
}

// pause stops forwarding to b until resume.
func (b *binding) pause() {
	b.paused.Store(true)
	b.ready.Store(false)
}

// resume lets b receive again from the next keyframe on.
func (b *binding) resume(now time.Time) {
	b.waitFrom.Store(now.UnixNano())
	b.paused.Store(false)
}

// onReport feeds a subscriber's receiver report about b to b's detector
// and pauses or resumes b's video. sub is the subscriber, told of changes.
func (t *publishedTrack) onReport(b *binding, r rtcp.ReceptionReport, sub *participant, now time.Time) {
	if !t.isVP8 {
		return // keyframe-aware pausing needs to know keyframes; audio is never paused
	}
	b.cmu.Lock()
	ch := b.detect.observe(now, r.FractionLost, r.LastSequenceNumber, b.sent.Load())
	hold, reason := b.detect.hold, b.detect.reason
	b.cmu.Unlock()
	switch ch {
	case pause:
		b.pause()
		t.m.congestion.WithLabelValues(congestionPaused).Inc()
		if sub != nil {
			sub.log.Info("subscriber falls behind: video paused", "track", t.info.ID, "reason", reason,
				"fraction_lost", float64(r.FractionLost)/256, "hold", hold.String())
			sub.send(signal.Congestion{Tracks: []signal.CongestedTrack{{Track: t.info.ID, State: congestionPaused,
				Reason: reason, RetryMS: hold.Milliseconds()}}})
		}
	case resume:
		b.resume(now)
		t.requestKeyframe()
		t.m.congestion.WithLabelValues(congestionResumed).Inc()
		if sub != nil {
			sub.log.Info("video resumed", "track", t.info.ID)
			sub.send(signal.Congestion{Tracks: []signal.CongestedTrack{{Track: t.info.ID, State: congestionResumed}}})
		}
	}
}
