package sfu

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/pion/webrtc/v3"

	"meeting.dev/meeting/media/signal"
)

// countHandler counts the records at Info and above.
type countHandler struct{ n *atomic.Int64 }

func (h countHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }
func (h countHandler) Handle(context.Context, slog.Record) error    { h.n.Add(1); return nil }
func (h countHandler) WithAttrs([]slog.Attr) slog.Handler           { return h }
func (h countHandler) WithGroup(string) slog.Handler                { return h }

// heapInUse returns the heap in use after a full collection.
func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// participantByID finds a participant of s (nil when gone).
func participantByID(s *SFU, id string) *participant {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.participantsLocked() {
		if p.info.ID == id {
			return p
		}
	}
	return nil
}

// A client flooding offers whose SDP is garbage neither grows the SFU's
// memory nor its log: 3,000 offers from one connection, as an attacker sent
// them (8 distinct ids of 7 KB each) and with ids that pass decoding.
func TestOfferFloodBounded(t *testing.T) {
	const offers = 3000
	for _, tc := range []struct {
		name  string
		idLen int
	}{
		{"7 KB ids", 7 << 10},
		{"valid ids", signal.MaxTrackID},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			var logs atomic.Int64
			s := startSFU(t, Config{Logger: slog.New(countHandler{&logs})})
			c := dialRaw(t, ctx, s.url)
			c.send(signal.Join{Token: mint(t, "room-flood", "u")})
			j, ok := c.read().(signal.Joined)
			if !ok {
				t.Fatal("no joined")
			}
			_ = c.ws.SetReadDeadline(time.Now().Add(2 * time.Minute))
			replies := make(chan int, 1)
			go func() { // count the replies until the server closes or all are answered
				n := 0
				for n < offers {
					if _, _, err := c.ws.ReadMessage(); err != nil {
						break
					}
					n++
				}
				replies <- n
			}()
			before := heapInUse()
			logsBefore := logs.Load()
			msg := make([]byte, 0, signal.MaxMessageSize)
			for i := range offers {
				msg = append(msg[:0], `{"type":"offer","sdp":"garbage","tracks":[`...)
				for k := range 8 {
					if k > 0 {
						msg = append(msg, ',')
					}
					id := fmt.Sprintf("%d-%d-", i, k)
					id += strings.Repeat("x", tc.idLen-len(id))
					msg = append(msg, `{"id":"`+id+`","source":"camera"}`...)
				}
				msg = append(msg, "]}"...)
				if err := c.ws.WriteMessage(websocket.TextMessage, msg); err != nil {
					break // the server closed the connection
				}
			}
			n := <-replies
			grown := int64(heapInUse()) - int64(before)
			t.Logf("%d replies; heap in use grew by %d KiB; %d log records", n, grown/1024, logs.Load()-logsBefore)
			if grown > 32<<20 {
				t.Errorf("heap in use grew by %d MiB after %d garbage offers", grown>>20, offers)
			}
			if got := logs.Load() - logsBefore; got > 20 {
				t.Errorf("%d log records for %d garbage offers from one connection", got, offers)
			}
			if p := participantByID(s.sfu, j.You.ID); p != nil {
				p.mu.Lock()
				kept := len(p.sources)
				p.mu.Unlock()
				if kept > MaxTracksPerParticipant {
					t.Errorf("the participant keeps %d track sources", kept)
				}
			}
		})
	}
}

// An offer is checked before anything of it is recorded, and offers beyond
// the rate are refused, then the connection is closed.
func TestOfferCheckedAndRateLimited(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s := startSFU(t, Config{})
	c := dialRaw(t, ctx, s.url)
	c.send(signal.Join{Token: mint(t, "room-rate", "u")})
	j, ok := c.read().(signal.Joined)
	if !ok {
		t.Fatal("no joined")
	}
	tracks := func(n int) []signal.TrackSource {
		var ts []signal.TrackSource
		for i := range n {
			ts = append(ts, signal.TrackSource{ID: fmt.Sprintf("t%d", i), Source: signal.SourceCamera})
		}
		return ts
	}
	for _, o := range []signal.Offer{
		{SDP: "garbage", Tracks: tracks(2)},
		{SDP: "v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n", Tracks: tracks(MaxTracksPerParticipant + 1)},
	} {
		c.send(o)
		c.wantError(fmt.Sprintf("offer %.20q with %d tracks", o.SDP, len(o.Tracks)), signal.CodeNegotiation)
	}
	p := participantByID(s.sfu, j.You.ID)
	if p == nil {
		t.Fatal("participant gone")
	}
	p.mu.Lock()
	kept, pub := len(p.sources), p.pub
	p.mu.Unlock()
	if kept != 0 || pub != nil {
		t.Fatalf("refused offers left %d track sources; publish connection created: %v", kept, pub != nil)
	}
	// Two of the burst are spent; three more pass the rate (and fail on
	// their SDP), then offers are refused for the rate until the
	// connection is closed.
	var rated int // refused for the rate, in a row
	for i := 0; ; i++ {
		if i > offerBurst+maxOffersRefused+5 {
			t.Fatal("the connection stays open")
		}
		c.send(signal.Offer{SDP: "garbage"})
		e, ok := c.read().(signal.Error)
		if !ok || e.Code != signal.CodeNegotiation {
			t.Fatalf("offer %d: %#v", i, e)
		}
		if !strings.Contains(e.Message, "too many offers") {
			rated = 0 // the bucket refilled meanwhile
			continue
		}
		rated++
		if strings.Contains(e.Message, "connection closed") {
			break
		}
	}
	if m := c.read(); m != nil {
		t.Fatalf("after the last refusal: %#v, want the connection closed", m)
	}
	if rated != maxOffersRefused+1 {
		t.Fatalf("%d offers refused for the rate before closing, want %d", rated, maxOffersRefused+1)
	}
}

// A client can trickle at most maxCandidates candidates; more are refused
// with bad_message and not added.
func TestTrickledCandidatesBounded(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s := startSFU(t, Config{})
	c := dialRaw(t, ctx, s.url)
	c.send(signal.Join{Token: mint(t, "room-cand", "u")})
	if _, ok := c.read().(signal.Joined); !ok {
		t.Fatal("no joined")
	}
	pc, err := webrtc.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeAudio, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
		t.Fatal(err)
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	c.send(signal.Offer{SDP: offer.SDP})
	if _, ok := c.read().(signal.Answer); !ok {
		t.Fatal("no answer")
	}
	for i := range maxCandidates + 1 {
		c.send(signal.Candidate{Target: signal.TargetPublish, Candidate: signal.ICECandidate{
			Candidate: fmt.Sprintf("candidate:%d 1 udp 2130706431 192.0.2.1 %d typ host", i, 10000+i)}})
	}
	_ = c.ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	e, ok := c.read().(signal.Error)
	if !ok || e.Code != signal.CodeBadMessage || !strings.Contains(e.Message, "too many") {
		t.Fatalf("candidate %d: %#v, want bad_message, too many", maxCandidates+1, e)
	}
}
