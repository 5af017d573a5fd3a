package sfu

import (
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v3"

	"meeting.dev/meeting/media/sfu/vp8"
)

func TestSlowDetector(t *testing.T) {
	t0 := time.Unix(1000, 0)
	sec := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Second) }
	var d slowDetector
	var sent uint64
	var highest uint32
	// A receiver that keeps up: 120 packets a second, all received.
	for i := range 5 {
		sent += 120
		highest += 120
		if ch := d.observe(sec(i), 0, highest, sent); ch != keep {
			t.Fatalf("keeping up, report %d: %v", i, ch)
		}
	}
	// One bad report is not enough; a good one in between resets.
	sent += 120
	if ch := d.observe(sec(5), 0, highest, sent); ch != keep { // stalled
		t.Fatalf("one stalled report: %v", ch)
	}
	sent += 120
	highest += 240
	if ch := d.observe(sec(6), 0, highest, sent); ch != keep {
		t.Fatalf("caught up: %v", ch)
	}
	sent += 120
	if ch := d.observe(sec(7), 0, highest, sent); ch != keep {
		t.Fatalf("stalled once more: %v", ch)
	}
	// Stalled twice in a row: paused for holdMin.
	sent += 120
	if ch := d.observe(sec(8), 0, highest, sent); ch != pause || d.reason != "stalled" || d.hold != holdMin {
		t.Fatalf("stalled twice: %v %q %v", ch, d.reason, d.hold)
	}
	// Reports during the hold change nothing; the first after it resumes.
	if ch := d.observe(sec(9), 255, highest, sent); ch != keep {
		t.Fatalf("during the hold: %v", ch)
	}
	if ch := d.observe(sec(10), 0, highest, sent); ch != resume {
		t.Fatalf("after the hold: %v", ch)
	}
	// Loss right after resuming: the hold doubles.
	for i, want := range []congestionChange{keep, keep, pause} { // the first report is the new baseline
		sent += 120
		highest += 120
		if ch := d.observe(sec(11+i), 40, highest, sent); ch != want {
			t.Fatalf("lossy report %d after resume: %v, want %v", i, ch, want)
		}
	}
	if d.reason != "loss" || d.hold != 2*holdMin {
		t.Fatalf("second pause: %q %v, want loss %v", d.reason, d.hold, 2*holdMin)
	}
	// Doubling stops at holdMax.
	at := sec(13)
	for range 10 {
		at = at.Add(d.hold)
		if ch := d.observe(at, 0, highest, sent); ch != resume {
			t.Fatalf("resume: %v", ch)
		}
		for range 3 {
			at = at.Add(time.Second)
			sent += 120
			d.observe(at, 100, highest, sent)
		}
		if !d.paused {
			t.Fatal("not paused again")
		}
	}
	if d.hold != holdMax {
		t.Fatalf("hold %v, want the cap %v", d.hold, holdMax)
	}
	// A calm spell after a resume brings the hold back to holdMin.
	at = at.Add(d.hold)
	d.observe(at, 0, highest, sent)
	for range 12 {
		at = at.Add(time.Second)
		sent += 120
		highest += 120
		d.observe(at, 0, highest, sent)
	}
	for range 2 {
		at = at.Add(time.Second)
		sent += 120
		d.observe(at, 0, highest, sent)
	}
	if !d.paused || d.hold != holdMin {
		t.Fatalf("after a calm spell: paused %v hold %v, want %v", d.paused, d.hold, holdMin)
	}
	// Too few packets sent to judge: no stall.
	var q slowDetector
	q.observe(t0, 0, 0, 0)
	for i := range 5 {
		if ch := q.observe(sec(i+1), 0, 0, uint64(i+1)*5); ch != keep {
			t.Fatalf("5 packets a second unacknowledged: %v", ch)
		}
	}
}

// vp8Packet returns a VP8 packet: the start of a keyframe or of an
// interframe, or a frame's continuation.
func vp8Packet(seq uint16, kind string) *rtp.Packet {
	var payload []byte
	switch kind {
	case "key":
		payload = append([]byte{0x10}, vp8.KeyframeHeader(100)...)
	case "delta":
		payload = append([]byte{0x10}, vp8.InterframeHeader(100)...)
	default:
		payload = []byte{0x00, 1, 2, 3}
	}
	return &rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seq, Timestamp: uint32(seq) * 100, SSRC: 42, PayloadType: 96}, Payload: payload}
}

func seqs(w *captureWriter) []uint16 {
	var s []uint16
	for _, p := range w.pkts {
		s = append(s, p.SequenceNumber)
	}
	return s
}

func TestPausedSubscriberResumesAtAKeyframe(t *testing.T) {
	m, err := newMetrics(nil)
	if err != nil {
		t.Fatal(err)
	}
	tr := &publishedTrack{m: m, isVP8: true, cache: &packetCache{}, total: newTotalBudget(),
		codec: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8}}
	slowW, fastW := &captureWriter{}, &captureWriter{}
	slow := &binding{id: "slow", ssrc: 1, pt: 96, w: slowW, bound: time.Now()}
	fast := &binding{id: "fast", ssrc: 2, pt: 96, w: fastW, bound: time.Now()}
	tr.bindings.Store(&[]*binding{slow, fast})
	tr.ended.Store(true) // no publisher to send keyframe requests to

	seq := uint16(65530) // the subscriber's numbering wraps too
	send := func(kinds ...string) {
		for _, k := range kinds {
			tr.write(vp8Packet(seq, k))
			seq++
		}
	}
	// Nothing before the first keyframe; from it on, everything.
	send("delta", "cont", "key", "cont", "delta", "cont")
	want := []uint16{65532, 65533, 65534, 65535}
	if got := seqs(slowW); !equal(got, want) {
		t.Fatalf("before the pause: %v, want %v", got, want)
	}
	// Paused mid-frame: nothing more reaches the slow subscriber, even a
	// keyframe; the other gets everything.
	slow.pause()
	send("cont", "delta", "key", "cont")
	if got := seqs(slowW); len(got) != 4 {
		t.Fatalf("paused subscriber got %v", got)
	}
	if got := counter(m.congestionDropped); got != 4 {
		t.Fatalf("dropped %v, want 4", got)
	}
	// Resumed: still nothing until a keyframe, which comes numbered right
	// after the last packet the subscriber got: no gap, so no loss to report.
	slow.resume(time.Now())
	send("cont", "delta", "cont", "key", "cont", "delta")
	want = append(want, 0, 1, 2)
	if got := seqs(slowW); !equal(got, want) {
		t.Fatalf("after resuming: %v, want %v", got, want)
	}
	if k := slowW.pkts[4]; !vp8.IsKeyframeStart(k.Payload) {
		t.Fatal("the first packet after the pause is not a keyframe")
	}
	if got := len(fastW.pkts); got != 14 {
		t.Fatalf("the subscriber that keeps up got %d of 14", got)
	}

	// NACKs are understood in the subscriber's numbering: 1 is the
	// keyframe's continuation. Packets from before the resume (65535) and
	// never sent (3) are refused.
	buf := make([]byte, 1500)
	for range 200 { // credit for the budget
		slow.sent.Add(1)
	}
	slowW.pkts = nil
	tr.retransmit(&rtcp.TransportLayerNack{MediaSSRC: 1, Nacks: rtcp.NackPairsFromSequenceNumbers([]uint16{65535, 1, 3})}, slow, buf)
	if len(slowW.pkts) != 1 || slowW.pkts[0].SequenceNumber != 1 || slowW.pkts[0].Payload[0] != 0 {
		t.Fatalf("retransmitted %+v, want the subscriber's 1", slowW.pkts)
	}
	if got := counter(m.refused[refusedNotSent]); got != 2 {
		t.Fatalf("refused as not sent: %v, want 2", got)
	}
	// The same packet again: refused, once is enough.
	tr.retransmit(&rtcp.TransportLayerNack{MediaSSRC: 1, Nacks: rtcp.NackPairsFromSequenceNumbers([]uint16{1})}, slow, buf)
	if len(slowW.pkts) != 1 || counter(m.refused[refusedRepeated]) != 1 {
		t.Fatalf("NACKed twice: %d packets, %v refused", len(slowW.pkts), counter(m.refused[refusedRepeated]))
	}
	// A late packet (the publisher's retransmission of one the SFU missed)
	// is forwarded in the same numbering and moves nothing back.
	fastW.pkts = nil
	tr.write(vp8Packet(seq-3, "cont"))
	if got := seqs(slowW); len(got) != 2 || got[1] != 0 {
		t.Fatalf("late packet to the resumed subscriber: %v, want its 0", got)
	}
	if len(fastW.pkts) != 1 || fastW.pkts[0].SequenceNumber != seq-3 {
		t.Fatalf("late packet to the other: %v", seqs(fastW))
	}
	if last := uint16(slow.last.Load()); last != seq-1 || slow.lastOut != 2 {
		t.Fatalf("after a late packet: last %d (want %d), lastOut %d (want 2)", last, seq-1, slow.lastOut)
	}
	// While paused, nothing is resent.
	slow.pause()
	n := len(slowW.pkts)
	tr.retransmit(&rtcp.TransportLayerNack{MediaSSRC: 1, Nacks: rtcp.NackPairsFromSequenceNumbers([]uint16{0})}, slow, buf)
	if len(slowW.pkts) != n {
		t.Fatal("resent to a paused subscriber")
	}
}

func TestRetransmitRefusesOldAndUncached(t *testing.T) {
	m, err := newMetrics(nil)
	if err != nil {
		t.Fatal(err)
	}
	tr := &publishedTrack{m: m, isVP8: true, cache: &packetCache{}, codec: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8}}
	w := &captureWriter{}
	b := &binding{id: "b", ssrc: 1, pt: 96, w: w, bound: time.Now()}
	tr.bindings.Store(&[]*binding{b})
	tr.ended.Store(true)
	tr.write(vp8Packet(10, "key"))
	for s := uint16(11); s < 100; s++ {
		tr.write(vp8Packet(s, "cont"))
	}
	// 10 is old: make it so in the cache.
	tr.cache.slots[10%cacheSize].at = time.Now().Add(-2 * retransmitMaxAge)
	// 20 was evicted (its slot holds another packet).
	tr.cache.slots[20%cacheSize].hdr.SequenceNumber = 20 + cacheSize
	w.pkts = nil
	tr.retransmit(&rtcp.TransportLayerNack{MediaSSRC: 1, Nacks: rtcp.NackPairsFromSequenceNumbers([]uint16{10, 20, 30})}, b, make([]byte, 1500))
	if len(w.pkts) != 1 || w.pkts[0].SequenceNumber != 30 {
		t.Fatalf("resent %v, want only 30", seqs(w))
	}
	if counter(m.refused[refusedTooOld]) != 1 || counter(m.refused[refusedNotCached]) != 1 {
		t.Fatalf("refusals: too old %v, not cached %v", counter(m.refused[refusedTooOld]), counter(m.refused[refusedNotCached]))
	}
}

func equal(a, b []uint16) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
