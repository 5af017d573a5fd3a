package sfu

import (
	"bytes"
	"testing"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v3"
)

// captureWriter records what a binding writes.
type captureWriter struct{ pkts []*rtp.Packet }

func (w *captureWriter) WriteRTP(h *rtp.Header, payload []byte) (int, error) {
	w.pkts = append(w.pkts, &rtp.Packet{Header: *h, Payload: append([]byte(nil), payload...)})
	return len(payload) + h.MarshalSize(), nil
}

func (w *captureWriter) Write(b []byte) (int, error) { return len(b), nil }

func TestWriteRewritesHeaderAndDropsPadding(t *testing.T) {
	m, err := newMetrics(nil)
	if err != nil {
		t.Fatal(err)
	}
	tr := &publishedTrack{m: m, codec: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus}}
	w := &captureWriter{}
	b := &binding{id: "x", ssrc: 1234, pt: 111, w: w}
	b.ready.Store(true)
	tr.bindings.Store(&[]*binding{b})

	// A packet with padding and an extension, as a browser sends it.
	in := rtp.Packet{Header: rtp.Header{Version: 2, Padding: true, SequenceNumber: 7, Timestamp: 99, SSRC: 42, PayloadType: 96},
		Payload: []byte{1, 2, 3}, PaddingSize: 4}
	if err := in.SetExtension(1, []byte{0xaa}); err != nil {
		t.Fatal(err)
	}
	raw, err := in.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var pkt rtp.Packet
	if err := pkt.Unmarshal(raw); err != nil {
		t.Fatal(err)
	}
	tr.write(&pkt)
	if len(w.pkts) != 1 {
		t.Fatalf("%d packets written", len(w.pkts))
	}
	out := w.pkts[0]
	if out.SSRC != 1234 || out.PayloadType != 111 || out.SequenceNumber != 7 || out.Timestamp != 99 {
		t.Fatalf("header = %+v", out.Header)
	}
	if out.Padding || out.Extension || len(out.Extensions) != 0 || !bytes.Equal(out.Payload, []byte{1, 2, 3}) {
		t.Fatalf("packet = %+v", out)
	}
	// What a subscriber receives parses back to the same payload.
	b2, err := out.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var back rtp.Packet
	if err := back.Unmarshal(b2); err != nil || !bytes.Equal(back.Payload, []byte{1, 2, 3}) {
		t.Fatalf("round trip: %v %v", back.Payload, err)
	}
}

var _ webrtc.TrackLocalWriter = (*captureWriter)(nil)

// A muted publisher's audio is not forwarded; unmuted, it is again.
func TestWriteDropsMutedAudio(t *testing.T) {
	m, err := newMetrics(nil)
	if err != nil {
		t.Fatal(err)
	}
	pub := &participant{}
	tr := &publishedTrack{m: m, codec: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus}, muted: &pub.audioMuted}
	w := &captureWriter{}
	b := &binding{id: "x", ssrc: 1234, pt: 111, w: w}
	b.ready.Store(true)
	tr.bindings.Store(&[]*binding{b})
	pkt := &rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: 1}, Payload: []byte{1}}
	for i, muted := range []bool{false, true, true, false} {
		pub.audioMuted.Store(muted)
		tr.write(pkt)
		if want := map[bool]int{false: 1, true: 0}[muted]; len(w.pkts) != want {
			t.Fatalf("packet %d (muted %v): %d written, want %d", i, muted, len(w.pkts), want)
		}
		w.pkts = nil
	}
	pub.audioMuted.Store(true)
	if n := testing.AllocsPerRun(100, func() { tr.write(pkt) }); n != 0 {
		t.Errorf("muted write allocates %v times", n)
	}
}
