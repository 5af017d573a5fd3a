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
	if t.cache != nil {
		t.cache.put(&hdr, pkt.Payload)
	}
	var (
		sent, waiting int
		now           time.Time
	)
	for _, b := range bs {
		if !b.ready.Load() && !key {
			if now.IsZero() {
				now = time.Now()
			}
			if now.Sub(b.bound) < keyframeWait {
				waiting++
			}
			continue
		}
		h := hdr
		h.SSRC = uint32(b.ssrc)
		h.PayloadType = uint8(b.pt)
		n, err := b.w.WriteRTP(&h, pkt.Payload)
		if err != nil || n == 0 {
			continue // not connected yet: the next keyframe is asked for above
		}
		if key && !b.ready.Load() {
			b.ready.Store(true)
		}
		sent++
	}
	if sent > 0 {
		t.m.packets.Add(float64(sent))
		t.m.bytes.Add(float64(sent * len(pkt.Payload)))
	}
	if waiting > 0 {
		t.requestKeyframe()
	}
}

// requestKeyframe asks the publisher for a keyframe, at most once per
// keyframeInterval; a request inside the interval is sent at its end.
func (t *publishedTrack) requestKeyframe() {
	if t.remote.Kind() != webrtc.RTPCodecTypeVideo || t.ended.Load() {
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
// to the publisher (throttled); NACKs are answered from the track's cache.
func (t *publishedTrack) readRTCP(s *webrtc.RTPSender) {
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
			switch p.(type) {
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				t.m.plisIn.Inc()
				t.requestKeyframe()
			case *rtcp.TransportLayerNack:
				t.m.nacks.Inc()
				t.retransmit(p.(*rtcp.TransportLayerNack), buf2)
			}
		}
	}
}

// retransmit resends the packets a subscriber reports lost, if still cached.
func (t *publishedTrack) retransmit(n *rtcp.TransportLayerNack, buf []byte) {
	if t.cache == nil {
		return
	}
	var b *binding
	for _, x := range *t.bindings.Load() {
		if uint32(x.ssrc) == n.MediaSSRC {
			b = x
			break
		}
	}
	if b == nil || !b.ready.Load() {
		return
	}
	for _, pair := range n.Nacks {
		for _, seq := range pair.PacketList() {
			h, payload, ok := t.cache.get(seq, buf)
			if !ok {
				continue
			}
			h.SSRC = uint32(b.ssrc)
			h.PayloadType = uint8(b.pt)
			if n, err := b.w.WriteRTP(&h, payload); err == nil && n > 0 {
				t.m.retransmits.Inc()
			}
		}
	}
}
