package client

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v3"

	"meeting.dev/meeting/media/sfu/vp8"
	"meeting.dev/meeting/media/signal"
)

func jsonMarshal(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("client: encode: %w", err)
	}
	return b, nil
}

func jsonUnmarshal(b []byte, v any) error {
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("client: decode: %w", err)
	}
	return nil
}

// Every synthetic packet ends with a trailer: magic, then the send time in
// Unix nanoseconds, so receivers can time the path through the SFU.
const (
	trailerMagic = 0x4d54_4731 // "MTG1"
	trailerSize  = 12
)

func putTrailer(p []byte, t time.Time) {
	binary.BigEndian.PutUint32(p[len(p)-trailerSize:], trailerMagic)
	binary.BigEndian.PutUint64(p[len(p)-8:], uint64(t.UnixNano()))
}

func readTrailer(p []byte) (time.Time, bool) {
	if len(p) < trailerSize || binary.BigEndian.Uint32(p[len(p)-trailerSize:]) != trailerMagic {
		return time.Time{}, false
	}
	return time.Unix(0, int64(binary.BigEndian.Uint64(p[len(p)-8:]))), true
}

// MediaOptions shape a synthetic track. Zero values take defaults.
type MediaOptions struct {
	// FrameInterval is the time between frames (audio 20ms, video 33ms).
	FrameInterval time.Duration
	// FrameSize is the bytes of a frame (audio 80, video 4000 — about 1 Mbit/s
	// at 30 frames/s; keyframes 4x).
	FrameSize int
	// KeyframeEvery is the time between unrequested keyframes (default 3s).
	KeyframeEvery time.Duration
	// MaxPayload is the largest RTP payload (default 1100).
	MaxPayload int
}

// Publisher sends one synthetic track.
type Publisher struct {
	c      *Client
	source string
	track  *webrtc.TrackLocalStaticRTP
	sender *webrtc.RTPSender
	opts   MediaOptions

	stopped   bool // guarded by c.mu
	stop      chan struct{}
	stopOnce  sync.Once
	done      chan struct{}
	forceKey  atomic.Bool
	sent      atomic.Uint64
	keyframes atomic.Uint64
	plis      atomic.Uint64
}

// Publish adds a synthetic track of source (signal.SourceAudio, Camera or
// Screen: Opus for audio, VP8 for video), renegotiates, and starts sending.
func (c *Client) Publish(ctx context.Context, source string, opts MediaOptions) (*Publisher, error) {
	if !signal.ValidSource(source) {
		return nil, fmt.Errorf("client: source %q is not audio, camera or screen", source)
	}
	codec := webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}
	kind := "video"
	if source == signal.SourceAudio {
		codec = webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}
		kind = "audio"
		if opts.FrameInterval == 0 {
			opts.FrameInterval = 20 * time.Millisecond
		}
		if opts.FrameSize == 0 {
			opts.FrameSize = 80
		}
	}
	if opts.FrameInterval == 0 {
		opts.FrameInterval = 33 * time.Millisecond
	}
	if opts.FrameSize == 0 {
		opts.FrameSize = 4000
	}
	if opts.KeyframeEvery == 0 {
		opts.KeyframeEvery = 3 * time.Second
	}
	if opts.MaxPayload == 0 {
		opts.MaxPayload = 1100
	}
	if opts.MaxPayload < 64 || opts.FrameSize < 64 {
		return nil, errors.New("client: frame size or max payload too small")
	}
	id := fmt.Sprintf("%s-%08x", source, rand.Uint32())
	track, err := webrtc.NewTrackLocalStaticRTP(codec, id, c.you.ID+"-"+kind)
	if err != nil {
		return nil, fmt.Errorf("client: track: %w", err)
	}
	c.offerMu.Lock()
	defer c.offerMu.Unlock()
	pub, err := c.publishPC()
	if err != nil {
		return nil, err
	}
	tr, err := pub.AddTransceiverFromTrack(track, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
	if err != nil {
		return nil, fmt.Errorf("client: add track: %w", err)
	}
	p := &Publisher{c: c, source: source, track: track, sender: tr.Sender(), opts: opts,
		stop: make(chan struct{}), done: make(chan struct{})}
	c.mu.Lock()
	c.published[id] = p
	c.mu.Unlock()
	if err := c.negotiateLocked(ctx); err != nil {
		p.halt()
		return nil, err
	}
	c.wg.Add(2)
	go func() {
		defer c.wg.Done()
		p.readRTCP()
	}()
	go func() {
		defer c.wg.Done()
		p.run()
	}()
	return p, nil
}

// TrackID is the track id in this client's SDP; the room names the track
// "<participant id>/<TrackID>".
func (p *Publisher) TrackID() string { return p.track.ID() }

// Sent returns the packets sent.
func (p *Publisher) Sent() uint64 { return p.sent.Load() }

// Keyframes returns the keyframes sent.
func (p *Publisher) Keyframes() uint64 { return p.keyframes.Load() }

// PLIs returns the keyframe requests received from the SFU.
func (p *Publisher) PLIs() uint64 { return p.plis.Load() }

// Unpublish stops sending, removes the track and renegotiates.
func (p *Publisher) Unpublish(ctx context.Context) error {
	p.halt()
	c := p.c
	c.mu.Lock()
	p.stopped = true
	delete(c.published, p.track.ID())
	c.mu.Unlock()
	c.offerMu.Lock()
	defer c.offerMu.Unlock()
	if err := c.pub.RemoveTrack(p.sender); err != nil {
		return fmt.Errorf("client: remove track: %w", err)
	}
	return c.negotiateLocked(ctx)
}

func (p *Publisher) halt() {
	p.stopOnce.Do(func() { close(p.stop) })
}

func (p *Publisher) readRTCP() {
	buf := make([]byte, 1500)
	for {
		n, _, err := p.sender.Read(buf)
		if err != nil {
			return
		}
		pkts, err := rtcp.Unmarshal(buf[:n])
		if err != nil {
			continue
		}
		for _, pk := range pkts {
			switch pk.(type) {
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				p.plis.Add(1)
				p.forceKey.Store(true)
			}
		}
	}
}

func (p *Publisher) run() {
	defer close(p.done)
	video := p.source != signal.SourceAudio
	clock := uint32(48000)
	if video {
		clock = 90000
	}
	step := uint32(p.opts.FrameInterval.Seconds() * float64(clock))
	pkt := rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: uint16(rand.Uint32()), Timestamp: rand.Uint32()}}
	frame := make([]byte, 4*p.opts.FrameSize)
	for i := range frame {
		frame[i] = byte(rand.Uint32())
	}
	buf := make([]byte, p.opts.MaxPayload+1)
	lastKey := time.Time{}
	tick := time.NewTicker(p.opts.FrameInterval)
	defer tick.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-tick.C:
		}
		now := time.Now()
		if !video {
			payload := buf[:p.opts.FrameSize]
			copy(payload, frame)
			payload[0] = 0x78 // Opus TOC: SILK/CELT hybrid, 20ms, mono
			putTrailer(payload, now)
			pkt.Marker = false
			pkt.Payload = payload
			if p.write(&pkt) != nil {
				return
			}
			pkt.Timestamp += step
			continue
		}
		key := lastKey.IsZero() || p.forceKey.Swap(false) || now.Sub(lastKey) >= p.opts.KeyframeEvery
		size := p.opts.FrameSize
		var head []byte
		if key {
			size *= 4
			head = vp8.KeyframeHeader(size / 2)
			lastKey = now
			p.keyframes.Add(1)
		} else {
			head = vp8.InterframeHeader(size / 2)
		}
		body := frame[:size]
		copy(body, head)
		chunk := p.opts.MaxPayload - 1
		for off := 0; off < len(body); {
			end := min(off+chunk, len(body))
			if rem := len(body) - end; rem > 0 && rem <= trailerSize {
				end = len(body) - trailerSize - 1 // leave the last packet room for a trailer
			}
			payload := buf[:1+end-off]
			payload[0] = 0
			if off == 0 {
				payload[0] = 0x10 // S: start of partition 0, PID 0
			}
			copy(payload[1:], body[off:end])
			if off > 0 || len(payload) >= 1+len(head)+trailerSize {
				putTrailer(payload, now)
			}
			pkt.Marker = end == len(body)
			pkt.Payload = payload
			if p.write(&pkt) != nil {
				return
			}
			off = end
		}
		pkt.Timestamp += step
	}
}

func (p *Publisher) write(pkt *rtp.Packet) error {
	err := p.track.WriteRTP(pkt)
	pkt.SequenceNumber++
	if err != nil {
		return err
	}
	p.sent.Add(1)
	return nil
}

// Received counts the packets of one track received from the SFU.
type Received struct {
	Info    signal.Track
	ssrc    webrtc.SSRC
	removed atomic.Bool
	ended   atomic.Bool

	mu        sync.Mutex
	packets   uint64
	bytes     uint64
	keyframes uint64
	started   bool
	firstAt   time.Time
	firstSeq  uint64 // extended sequence numbers
	maxSeq    uint64
	lastSeq   uint16
	latencies []time.Duration
}

// TrackStats is a snapshot of a Received.
type TrackStats struct {
	Info      signal.Track
	Packets   uint64
	Bytes     uint64
	Keyframes uint64
	// Lost is the gap between the sequence span seen and packets received.
	Lost uint64
	// Removed is true once the server unpublished the track.
	Removed bool
	// Ended is true once the track stopped on the subscribe connection.
	Ended bool
	// LastSeq is the sequence number of the last packet received.
	LastSeq uint16
	// FirstAt is when the first packet arrived (zero before; Reset keeps it).
	FirstAt time.Time
	// Latencies are publish-to-receive times of timed packets, in order.
	Latencies []time.Duration
}

func (r *Received) add(pkt *rtp.Packet, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.packets++
	r.bytes += uint64(len(pkt.Payload))
	if r.Info.Kind == "video" && vp8.IsKeyframeStart(pkt.Payload) {
		r.keyframes++
	}
	r.lastSeq = pkt.SequenceNumber
	seq := uint64(pkt.SequenceNumber)
	if !r.started {
		r.started = true
		if r.firstAt.IsZero() {
			r.firstAt = at
		}
		r.firstSeq, r.maxSeq = seq+1<<16, seq+1<<16
	} else {
		// Unwrap around the highest sequence number seen.
		cycle := r.maxSeq &^ 0xffff
		ext := cycle | seq
		switch {
		case ext+0x8000 < r.maxSeq:
			ext += 1 << 16
		case ext > r.maxSeq+0x8000 && ext >= 1<<16:
			ext -= 1 << 16
		}
		if ext > r.maxSeq {
			r.maxSeq = ext
		}
		if ext < r.firstSeq {
			r.firstSeq = ext
		}
	}
	if sent, ok := readTrailer(pkt.Payload); ok {
		r.latencies = append(r.latencies, at.Sub(sent))
	}
}

// Stats returns a snapshot.
func (r *Received) Stats() TrackStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := TrackStats{Info: r.Info, Packets: r.packets, Bytes: r.bytes, Keyframes: r.keyframes,
		Removed: r.removed.Load(), Ended: r.ended.Load(), LastSeq: r.lastSeq, FirstAt: r.firstAt, Latencies: slices.Clone(r.latencies)}
	if r.started {
		if span := r.maxSeq - r.firstSeq + 1; span > r.packets {
			s.Lost = span - r.packets
		}
	}
	return s
}

// Reset starts counting afresh (for a measurement window).
func (r *Received) Reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.packets, r.bytes, r.keyframes, r.started, r.latencies = 0, 0, 0, false, nil
}

func (c *Client) onTrack(remote *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
	c.mu.Lock()
	info, ok := c.announced[remote.ID()]
	if !ok {
		info = signal.Track{ID: remote.ID(), Participant: remote.StreamID(), Kind: remote.Kind().String()}
	}
	if c.closed {
		c.mu.Unlock()
		return
	}
	r := &Received{Info: info, ssrc: remote.SSRC()}
	c.received[info.ID] = r
	c.wg.Add(1)
	c.mu.Unlock()
	defer c.wg.Done()
	defer r.ended.Store(true)
	buf := make([]byte, 1500)
	var pkt rtp.Packet
	for {
		n, _, err := remote.Read(buf)
		if err != nil {
			return
		}
		if pkt.Unmarshal(buf[:n]) != nil {
			continue
		}
		r.add(&pkt, time.Now())
	}
}

// Tracks returns the stats of every track received, removed ones included.
func (c *Client) Tracks() []TrackStats {
	c.mu.Lock()
	rs := make([]*Received, 0, len(c.received))
	for _, r := range c.received {
		rs = append(rs, r)
	}
	c.mu.Unlock()
	out := make([]TrackStats, 0, len(rs))
	for _, r := range rs {
		out = append(out, r.Stats())
	}
	slices.SortFunc(out, func(a, b TrackStats) int {
		switch {
		case a.Info.ID < b.Info.ID:
			return -1
		case a.Info.ID > b.Info.ID:
			return 1
		}
		return 0
	})
	return out
}

// ResetStats resets the counters of every received track.
func (c *Client) ResetStats() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range c.received {
		r.Reset()
	}
}

// Announced returns the tracks the room currently announces, by id.
func (c *Client) Announced() map[string]signal.Track {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := make(map[string]signal.Track, len(c.announced))
	for k, v := range c.announced {
		m[k] = v
	}
	return m
}

// ErrNoTrack is returned for a track this client does not receive.
var ErrNoTrack = errors.New("client: no such received track")

func (c *Client) receivedSSRC(trackID string) (uint32, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.received[trackID]
	if r == nil {
		return 0, fmt.Errorf("%w: %s", ErrNoTrack, trackID)
	}
	return uint32(r.ssrc), nil
}

// RequestKeyframe sends a PLI for a received track, as a decoder would.
func (c *Client) RequestKeyframe(trackID string) error {
	ssrc, err := c.receivedSSRC(trackID)
	if err != nil {
		return err
	}
	if err := c.sub.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: ssrc}}); err != nil {
		return fmt.Errorf("client: send PLI: %w", err)
	}
	return nil
}

// SendNACK reports packets of a received track as lost.
func (c *Client) SendNACK(trackID string, seqs ...uint16) error {
	ssrc, err := c.receivedSSRC(trackID)
	if err != nil {
		return err
	}
	n := &rtcp.TransportLayerNack{MediaSSRC: ssrc, Nacks: rtcp.NackPairsFromSequenceNumbers(seqs)}
	if err := c.sub.WriteRTCP([]rtcp.Packet{n}); err != nil {
		return fmt.Errorf("client: send NACK: %w", err)
	}
	return nil
}
