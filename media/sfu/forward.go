package sfu

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v3"

	"meeting.dev/meeting/media/sfu/vp8"
	"meeting.dev/meeting/media/signal"
)

// keyframeInterval is the least time between two keyframe requests sent to
// a publisher for one track; requests in between are merged into one sent
// when the interval is over.
const keyframeInterval = 500 * time.Millisecond

// publishedTrack is one incoming track and its fan-out to subscribers. It is
// a webrtc.TrackLocal bound once per subscriber peer connection: one
// ReadRTP from the publisher, one WriteRTP per binding, with no copy of the
// payload and no lock on the packet path.
type publishedTrack struct {
	info      signal.Track
	remote    *webrtc.TrackRemote
	publisher *participant
	pub       *webrtc.PeerConnection // the publisher's publish connection
	codec     webrtc.RTPCodecCapability
	isVP8     bool
	m         *metrics
	cache     *packetCache // nil when subscribers cannot NACK (audio)
	muted     *atomic.Bool // audio: the publisher's audio_muted, under which nothing is forwarded; nil for video
	total     *totalBudget // the SFU's retransmission budget; nil: none

	mu       sync.Mutex // guards bindings writes, lastPLI, pliTimer
	bindings atomic.Pointer[[]*binding]
	lastPLI  time.Time
	pliTimer *time.Timer
	ended    atomic.Bool
}

// binding is the track bound to one subscriber peer connection.
type binding struct {
	id    string
	ssrc  webrtc.SSRC
	pt    webrtc.PayloadType
	w     webrtc.TrackLocalWriter
	ready atomic.Bool // false until a keyframe reached this subscriber (video)
	bound time.Time
	flow  // sequence numbers, retransmission budget, congestion (congestion.go)
}

// keyframeWait is how long a subscriber waiting for its first keyframe makes
// the SFU ask the publisher for one. A subscriber whose connection never
// comes up must not make the publisher send keyframes for ever; one that
// connects later is served by the request made when it connects.
const keyframeWait = 10 * time.Second

func newPublishedTrack(info signal.Track, remote *webrtc.TrackRemote, pub *participant, pc *webrtc.PeerConnection, m *metrics) *publishedTrack {
	c := remote.Codec().RTPCodecCapability
	t := &publishedTrack{info: info, remote: remote, publisher: pub, pub: pc, codec: c, m: m,
		isVP8: strings.EqualFold(c.MimeType, webrtc.MimeTypeVP8)}
	if remote.Kind() == webrtc.RTPCodecTypeVideo {
		t.cache = &packetCache{}
	} else {
		t.muted = &pub.audioMuted
	}
	if pub != nil && pub.s != nil {
		t.total = pub.s.retx
	}
	t.bindings.Store(&[]*binding{})
	return t
}

// ID, StreamID, RID and Kind make publishedTrack a webrtc.TrackLocal.
func (t *publishedTrack) ID() string                { return t.info.ID }
func (t *publishedTrack) StreamID() string          { return t.info.Participant }
func (t *publishedTrack) RID() string               { return "" }
func (t *publishedTrack) Kind() webrtc.RTPCodecType { return t.remote.Kind() }

var errNoCodec = errors.New("no codec in common with the subscriber")

// Bind is called by pion when a subscriber's negotiation completes.
func (t *publishedTrack) Bind(ctx webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	for _, c := range ctx.CodecParameters() {
		if !strings.EqualFold(c.MimeType, t.codec.MimeType) {
			continue
		}
		b := &binding{id: ctx.ID(), ssrc: ctx.SSRC(), pt: c.PayloadType, w: ctx.WriteStream(), bound: time.Now()}
		b.ready.Store(!t.isVP8)
		t.mu.Lock()
		old := *t.bindings.Load()
		next := make([]*binding, 0, len(old)+1)
		next = append(next, old...)
		next = append(next, b)
		t.bindings.Store(&next)
		t.mu.Unlock()
		t.requestKeyframe()
		return c, nil
	}
	return webrtc.RTPCodecParameters{}, fmt.Errorf("track %s (%s): %w", t.info.ID, t.codec.MimeType, errNoCodec)
}

// Unbind is called by pion when a subscriber stops receiving the track.
func (t *publishedTrack) Unbind(ctx webrtc.TrackLocalContext) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	old := *t.bindings.Load()
	next := make([]*binding, 0, len(old))
	for _, b := range old {
		if b.id != ctx.ID() {
			next = append(next, b)
		}
	}
	t.bindings.Store(&next)
	return nil
}

// forward copies the publisher's packets to every binding until the
// publisher's track ends.
func (t *publishedTrack) forward() {
	buf := make([]byte, 1500)
	var pkt rtp.Packet
	for {
		n, _, err := t.remote.Read(buf)
		if err != nil {
			return
		}
		if err := pkt.Unmarshal(buf[:n]); err != nil {
			continue
		}
		t.write(&pkt)
	}
}

func (t *publishedTrack) write(pkt *rtp.Packet) {
	bs := *t.bindings.Load()
	if len(bs) == 0 || (t.muted != nil && t.muted.Load()) {
		return
	}
	key := t.isVP8 && vp8.IsKeyframeStart(pkt.Payload)
	hdr := pkt.Header
	hdr.Extension = false // the publisher's extension ids mean nothing to subscribers
	hdr.Extensions = nil
	hdr.Padding = false // Unmarshal took the padding off the payload; padding-only probes go on empty
	var now time.Time
	if t.cache != nil {
		now = time.Now()
		t.cache.put(&hdr, pkt.Payload, now)
	}
	var sent, waiting, paused int
	for _, b := range bs {
		if !b.ready.Load() {
			if b.paused.Load() {
				paused++ // congested: nothing until it resumes, then from a keyframe
				continue
			}
			if !key {
				if now.IsZero() {
					now = time.Now()
				}
				if now.Sub(b.waitingSince()) < keyframeWait {
					waiting++
				}
				continue
			}
			b.restart(hdr.SequenceNumber)
		}
		h := hdr
		h.SequenceNumber -= b.off
		h.SSRC = uint32(b.ssrc)
		h.PayloadType = uint8(b.pt)
		n, err := b.w.WriteRTP(&h, pkt.Payload)
		if err != nil || n == 0 {
			continue // not connected yet: the next keyframe is asked for above
		}
		b.sentOne(hdr.SequenceNumber, h.SequenceNumber)
		if key && !b.ready.Load() {
			b.ready.Store(true)
		}
		sent++
	}
	if sent > 0 {
		t.m.packets.Add(float64(sent))
		t.m.bytes.Add(float64(sent * len(pkt.Payload)))
		if t.total != nil {
			t.total.forwarded.Add(uint64(sent))
		}
	}
	if paused > 0 {
		t.m.congestionDropped.Add(float64(paused))
	}
	if waiting > 0 {
		t.requestKeyframe()
	}
}

// requestKeyframe asks the publisher for a keyframe, at most once per
// keyframeInterval; a request inside the interval is sent at its end.
func (t *publishedTrack) requestKeyframe() {
	if t.ended.Load() || t.remote.Kind() != webrtc.RTPCodecTypeVideo {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.pliTimer != nil {
		return // one is scheduled
	}
	wait := keyframeInterval - time.Since(t.lastPLI)
	if wait <= 0 {
		t.sendPLILocked()
		return
	}
	t.pliTimer = time.AfterFunc(wait, func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		t.pliTimer = nil
		t.sendPLILocked()
	})
}

func (t *publishedTrack) sendPLILocked() {
	if t.ended.Load() {
		return
	}
	t.lastPLI = time.Now()
	err := t.pub.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: uint32(t.remote.SSRC())}})
	if err == nil {
		t.m.plisOut.Inc()
	}
}

// end marks the track ended and stops a scheduled keyframe request. It
// reports whether this call ended it.
func (t *publishedTrack) end() bool {
	if !t.ended.CompareAndSwap(false, true) {
		return false
	}
	t.mu.Lock()
	if t.pliTimer != nil {
		t.pliTimer.Stop()
		t.pliTimer = nil
	}
	t.mu.Unlock()
	return true
}

// readRTCP drains a subscriber's RTCP for this track: keyframe requests go
// to the publisher (throttled); NACKs are answered from the track's cache
// within the retransmission budget; receiver reports feed the congestion
// detector of the subscriber's binding. sub is the subscriber.
func (t *publishedTrack) readRTCP(s *webrtc.RTPSender, sub *participant) {
	var ssrc webrtc.SSRC
	if ps := s.GetParameters(); len(ps.Encodings) > 0 {
		ssrc = ps.Encodings[0].SSRC
	}
	buf := make([]byte, 1500)
	buf2 := make([]byte, 1500)
	for {
		n, _, err := s.Read(buf)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrClosedPipe) {
				t.publisher.log.Debug("subscriber RTCP ended", "track", t.info.ID, "err", err)
			}
			return
		}
		pkts, err := rtcp.Unmarshal(buf[:n])
		if err != nil {
			continue
		}
		for _, p := range pkts {
			switch p := p.(type) {
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				t.m.plisIn.Inc()
				t.requestKeyframe()
			case *rtcp.TransportLayerNack:
				t.m.nacks.Inc()
				t.retransmit(p, t.binding(webrtc.SSRC(p.MediaSSRC)), buf2)
			case *rtcp.ReceiverReport:
				for _, r := range p.Reports {
					if webrtc.SSRC(r.SSRC) != ssrc {
						continue
					}
					if b := t.binding(ssrc); b != nil {
						t.onReport(b, r, sub, time.Now())
					}
				}
			}
		}
	}
}

// binding returns the binding of the subscriber SSRC ssrc, or nil.
func (t *publishedTrack) binding(ssrc webrtc.SSRC) *binding {
	for _, b := range *t.bindings.Load() {
		if b.ssrc == ssrc {
			return b
		}
	}
	return nil
}

// retransmit resends the packets a subscriber reports lost, as far as the
// retransmission budget allows (budget.go); every refusal is counted.
func (t *publishedTrack) retransmit(n *rtcp.TransportLayerNack, b *binding, buf []byte) {
	if t.cache == nil || b == nil {
		return
	}
	ready := b.ready.Load()
	var now time.Time
	for _, pair := range n.Nacks {
		for _, out := range pair.PacketList() {
			seq, ok := b.original(out)
			if !ok || !ready {
				t.m.refused[refusedNotSent].Inc()
				continue
			}
			h, payload, at, ok := t.cache.get(seq, buf)
			if !ok {
				t.m.refused[refusedNotCached].Inc()
				continue
			}
			if now.IsZero() {
				now = time.Now()
			}
			if now.Sub(at) > retransmitMaxAge {
				t.m.refused[refusedTooOld].Inc()
				continue
			}
			if r := b.budget.allow(seq, b.sent.Load(), now, t.total); r != resend {
				t.m.refused[r].Inc()
				continue
			}
			h.SequenceNumber = out
			h.SSRC = uint32(b.ssrc)
			h.PayloadType = uint8(b.pt)
			if n, err := b.w.WriteRTP(&h, payload); err == nil && n > 0 {
				t.m.retransmits.Inc()
			}
		}
	}
}
