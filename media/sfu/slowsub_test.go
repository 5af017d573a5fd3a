package sfu

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/pion/ice/v2"
	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v3"

	"meeting.dev/meeting/media/client"
	"meeting.dev/meeting/media/internal/pionlog"
	"meeting.dev/meeting/media/signal"
)

// freezableConn is a UDP socket whose reader can be stopped: while frozen,
// nothing is read and the kernel drops what overflows its buffer, as for a
// receiver whose CPU is taken.
type freezableConn struct {
	net.PacketConn
	frozen atomic.Bool
	closed chan struct{}
}

func (c *freezableConn) ReadFrom(p []byte) (int, net.Addr, error) {
	for c.frozen.Load() {
		select {
		case <-c.closed:
			return 0, nil, net.ErrClosed
		case <-time.After(5 * time.Millisecond):
		}
	}
	return c.PacketConn.ReadFrom(p)
}

// slowSubscriber is a subscriber built from pion and raw signalling, whose
// UDP socket can be frozen.
type slowSubscriber struct {
	t    *testing.T
	ws   *websocket.Conn
	conn *freezableConn
	pc   *webrtc.PeerConnection
	wmu  sync.Mutex

	mu         sync.Mutex
	tracks     map[string]signal.Track // announced, by id
	packets    map[string]uint64       // received, by track id
	congestion []signal.CongestedTrack
	done       chan struct{}
}

func joinSlow(t *testing.T, ctx context.Context, s *server, room, user string) *slowSubscriber {
	t.Helper()
	udp, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &freezableConn{PacketConn: udp, closed: make(chan struct{})}
	me := &webrtc.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	ir := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(me, ir); err != nil {
		t.Fatal(err)
	}
	lf := pionlog.New(nil)
	se := webrtc.SettingEngine{LoggerFactory: lf}
	se.SetICEUDPMux(webrtc.NewICEUDPMux(lf.NewLogger("udpmux"), c))
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetIncludeLoopbackCandidate(true)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	api := webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se))
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	ws, _, err := websocket.DefaultDialer.DialContext(ctx, s.url, originOf(s.url))
	if err != nil {
		t.Fatal(err)
	}
	sub := &slowSubscriber{t: t, ws: ws, conn: c, pc: pc, tracks: map[string]signal.Track{}, packets: map[string]uint64{},
		done: make(chan struct{})}
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		buf := make([]byte, 1500)
		for {
			if _, _, err := tr.Read(buf); err != nil {
				return
			}
			sub.mu.Lock()
			sub.packets[tr.ID()]++
			sub.mu.Unlock()
		}
	})
	t.Cleanup(func() {
		c.frozen.Store(false)
		_ = ws.Close()
		<-sub.done
		_ = pc.Close()
		close(c.closed)
		_ = udp.Close()
	})
	sub.send(signal.Join{Token: mint(t, room, user)})
	go sub.run()
	return sub
}

func (s *slowSubscriber) send(m signal.Message) {
	b, err := signal.Encode(m)
	if err != nil {
		s.t.Error(err)
		return
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	_ = s.ws.WriteMessage(websocket.TextMessage, b)
}

// run reads signalling until the connection ends.
func (s *slowSubscriber) run() {
	defer close(s.done)
	for {
		_, b, err := s.ws.ReadMessage()
		if err != nil {
			return
		}
		m, err := signal.Decode(b)
		if err != nil {
			s.t.Errorf("server message %s: %v", b, err)
			return
		}
		switch v := m.(type) {
		case signal.Joined:
			s.mu.Lock()
			for _, tr := range v.Tracks {
				s.tracks[tr.ID] = tr
			}
			s.mu.Unlock()
		case signal.TrackPublished:
			s.mu.Lock()
			s.tracks[v.Track.ID] = v.Track
			s.mu.Unlock()
		case signal.Congestion:
			s.mu.Lock()
			s.congestion = append(s.congestion, v.Tracks...)
			s.mu.Unlock()
		case signal.Offer:
			if err := s.answer(v.SDP); err != nil {
				s.t.Errorf("answer: %v", err)
				return
			}
		}
	}
}

func (s *slowSubscriber) answer(sdp string) error {
	if err := s.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: sdp}); err != nil {
		return err
	}
	a, err := s.pc.CreateAnswer(nil)
	if err != nil {
		return err
	}
	gathered := webrtc.GatheringCompletePromise(s.pc)
	if err := s.pc.SetLocalDescription(a); err != nil {
		return err
	}
	<-gathered
	s.send(signal.Answer{SDP: s.pc.LocalDescription().SDP})
	return nil
}

// videoPackets returns the packets received on each announced video track.
func (s *slowSubscriber) videoPackets() map[string]uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]uint64{}
	for id, tr := range s.tracks {
		if tr.Kind == "video" {
			out[id] = s.packets[id]
		}
	}
	return out
}

func (s *slowSubscriber) states() []signal.CongestedTrack {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]signal.CongestedTrack(nil), s.congestion...)
}

// One subscriber stops reading its socket: its video is paused and it is
// told; the others lose nothing; once it reads again its video resumes.
func TestSlowSubscriberIsolated(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s := startSFU(t, Config{})
	const room = "slow"
	var pubs, subs []*client.Client
	for i := range 2 {
		subs = append(subs, join(t, ctx, s, room, "sub"+string(rune('a'+i))))
	}
	slow := joinSlow(t, ctx, s, room, "slow")
	for i := range 2 {
		p := join(t, ctx, s, room, "pub"+string(rune('a'+i)))
		for _, src := range []string{signal.SourceAudio, signal.SourceCamera} {
			if _, err := p.Publish(ctx, src, client.MediaOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		pubs = append(pubs, p)
	}
	sources := []string{signal.SourceAudio, signal.SourceCamera}
	for _, c := range subs {
		waitFor(t, ctx, "media at a subscriber", func() bool { return receiving(c, pubs, sources, 20) })
	}
	waitFor(t, ctx, "video at the slow subscriber", func() bool {
		v := slow.videoPackets()
		if len(v) != 2 {
			return false
		}
		for _, n := range v {
			if n < 20 {
				return false
			}
		}
		return true
	})
	for _, c := range subs {
		c.ResetStats()
	}

	slow.conn.frozen.Store(true)
	waitFor(t, ctx, "the slow subscriber told its video is paused", func() bool {
		for _, c := range slow.states() {
			if c.State == congestionPaused {
				return true
			}
		}
		return false
	})
	paused := counter(s.sfu.m.congestion.WithLabelValues(congestionPaused))
	if paused < 1 {
		t.Fatalf("congestion metric: %v pauses", paused)
	}
	slow.mu.Lock()
	for _, c := range slow.congestion {
		if tr := slow.tracks[c.Track]; tr.Kind != "video" {
			t.Errorf("congestion for %q (%s): only video is paused", c.Track, tr.Kind)
		}
	}
	slow.mu.Unlock()

	// It reads again: its video resumes, from a keyframe.
	slow.conn.frozen.Store(false)
	before := slow.videoPackets()
	waitFor(t, ctx, "video resumed at the slow subscriber", func() bool {
		resumed := false
		for _, c := range slow.states() {
			resumed = resumed || c.State == congestionResumed
		}
		if !resumed {
			return false
		}
		for id, n := range slow.videoPackets() {
			if n < before[id]+20 {
				return false
			}
		}
		return true
	})

	// The others lost nothing meanwhile and kept receiving.
	for _, c := range subs {
		if !receiving(c, pubs, sources, 50) {
			t.Errorf("%s stopped receiving", c.ID())
		}
		for _, st := range c.Tracks() {
			if st.Lost != 0 {
				t.Errorf("%s lost %d packets of %s", c.ID(), st.Lost, st.Info.ID)
			}
		}
	}
	t.Logf("pauses %v, resumes %v, packets not forwarded to the paused subscriber %v, retransmissions %v",
		counter(s.sfu.m.congestion.WithLabelValues(congestionPaused)), counter(s.sfu.m.congestion.WithLabelValues(congestionResumed)),
		counter(s.sfu.m.congestionDropped), counter(s.sfu.m.retransmits))
}
