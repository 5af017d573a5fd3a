package sfu

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v3"
	"golang.org/x/time/rate"

	"meeting.dev/meeting/media/internal/peer"
	"meeting.dev/meeting/media/signal"
	"meeting.dev/meeting/media/token"
)

// MaxTracksPerParticipant bounds what one participant publishes: audio,
// camera, screen and the screen's audio.
const MaxTracksPerParticipant = 4

// participant is one WebSocket session in a room with up to two peer
// connections: sub, on which the server offers everyone else's tracks and
// the chat data channel, and pub, created by the client's first offer, on
// which the client sends its tracks. Each has one offerer, so offers never
// collide; a participant that only watches has no pub at all.
type participant struct {
	info signal.Participant // who: ID, User, Name and Host never change; the state is in state
	room *Room
	conn *signal.Conn
	sub  *webrtc.PeerConnection
	chat *webrtc.DataChannel
	s    *SFU
	log  *slog.Logger

	mu      sync.Mutex
	pub     *webrtc.PeerConnection // nil until the client's first offer
	sources map[string]string      // track id in the client's SDP -> source, of the last offer applied
	owned   map[string]*publishedTrack
	senders map[*publishedTrack]*webrtc.RTPSender
	closed  bool

	state      participantState // guarded by room.mu
	audioMuted atomic.Bool      // state.audioMuted, read on the packet path

	chatLimit     *rate.Limiter
	offerLimit    *rate.Limiter
	stateLimit    *rate.Limiter
	offersRefused int  // offers in a row refused for the rate; reader goroutine only
	candidates    int  // trickled candidates added, both peer connections; reader goroutine only
	chatLive      bool // the chat channel is open and got the history; guarded by room.chatMu

	left     chan struct{} // closed when the session is over
	leftOnce sync.Once

	negMu        sync.Mutex // serialises offers on sub
	offerPending bool       // an offer is waiting for its answer
	again        bool       // something changed while an offer was pending
}

// participantState is what a participant says of itself (and a host's mute).
type participantState struct {
	audioMuted, videoMuted, handRaised bool
}

func (s *SFU) newParticipant(conn *signal.Conn, c token.Claims) (*participant, error) {
	user := c.User
	p := &participant{
		info:    signal.Participant{ID: uuid.NewString(), User: user, Name: c.Name, Host: c.Role == token.RoleHost},
		conn:    conn,
		s:       s,
		sources: map[string]string{},
		owned:   map[string]*publishedTrack{},
		senders: map[*publishedTrack]*webrtc.RTPSender{},
		// A chat message goes to the whole room: a sender gets 10 at once
		// and 2 per second after.
		chatLimit:  rate.NewLimiter(2, 10),
		offerLimit: rate.NewLimiter(offerPerSecond, offerBurst),
		stateLimit: rate.NewLimiter(statePerSecond, stateBurst),
		left:       make(chan struct{}),
	}
	// What one client makes the server log is bounded, whatever it sends.
	p.log = limitLogger(s.log).With("participant", p.info.ID, "user", user)
	var err error
	if p.sub, err = s.subAPI.NewPeerConnection(webrtc.Configuration{}); err != nil {
		return nil, fmt.Errorf("subscribe peer connection: %w", err)
	}
	if p.chat, err = p.sub.CreateDataChannel("chat", nil); err != nil {
		_ = p.sub.Close()
		return nil, fmt.Errorf("chat data channel: %w", err)
	}
	p.chat.OnMessage(p.onChat)
	p.chat.OnOpen(func() { p.room.openChat(p) })
	p.sub.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		if st == webrtc.PeerConnectionStateConnected {
			p.mu.Lock()
			ts := make([]*publishedTrack, 0, len(p.senders))
			for t := range p.senders {
				ts = append(ts, t)
			}
			p.mu.Unlock()
			for _, t := range ts {
				t.requestKeyframe()
			}
		}
	})
	return p, nil
}

// describeLocked returns p with its current state, as the room tells it;
// the caller holds room.mu.
func (p *participant) describeLocked() signal.Participant {
	d := p.info
	d.AudioMuted, d.VideoMuted, d.HandRaised = p.state.audioMuted, p.state.videoMuted, p.state.handRaised
	return d
}

// setAudioMutedLocked mutes or unmutes p's audio: from now on the SFU
// forwards none of it, or all of it; the caller holds room.mu.
func (p *participant) setAudioMutedLocked(muted bool) {
	p.state.audioMuted = muted
	p.audioMuted.Store(muted)
}

// publishPC returns the publish peer connection, creating it on first use.
func (p *participant) publishPC() (*webrtc.PeerConnection, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pub != nil {
		return p.pub, nil
	}
	if p.closed {
		return nil, errors.New("participant left")
	}
	pc, err := p.s.pubAPI.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, fmt.Errorf("publish peer connection: %w", err)
	}
	pc.OnTrack(p.onTrack)
	pc.OnDataChannel(func(dc *webrtc.DataChannel) {
		p.send(signal.Error{Code: signal.CodeBadChat, Message: fmt.Sprintf("data channel %q on the publish connection is not served; chat is the server's channel on the subscribe connection", dc.Label())})
		// Closed once open: pion attaches the SCTP stream after this
		// callback, and a Close before that never reaches the client.
		dc.OnOpen(func() { _ = dc.Close() })
	})
	p.pub = pc
	return pc, nil
}

// send queues a signalling message; a closed connection drops it.
func (p *participant) send(m signal.Message) {
	if err := p.conn.Send(m); err != nil && !errors.Is(err, signal.ErrClosed) {
		p.log.Warn("signalling send failed", "type", m.MessageType(), "err", err)
	}
}

// handle runs on the connection's reader for each message after the join.
func (p *participant) handle(m signal.Message) {
	switch v := m.(type) {
	case signal.Offer:
		if !p.allowOffer() {
			return
		}
		if err := p.answerOffer(v); err != nil {
			p.log.Info("publish offer refused", "err", err)
			p.send(signal.Error{Code: signal.CodeNegotiation, Message: err.Error()})
		}
	case signal.Answer:
		if err := p.acceptAnswer(v); err != nil {
			p.log.Info("subscribe answer refused", "err", err)
			p.send(signal.Error{Code: signal.CodeNegotiation, Message: err.Error()})
		}
	case signal.Candidate:
		if p.candidates >= maxCandidates {
			p.send(signal.Error{Code: signal.CodeBadMessage, Message: fmt.Sprintf("candidate: too many, at most %d per connection", maxCandidates)})
			return
		}
		pc := p.sub
		if v.Target == signal.TargetPublish {
			var err error
			if pc, err = p.publishPC(); err != nil {
				p.send(signal.Error{Code: signal.CodeInternal, Message: err.Error()})
				return
			}
		}
		c := webrtc.ICECandidateInit{Candidate: v.Candidate.Candidate, SDPMid: v.Candidate.SDPMid,
			SDPMLineIndex: v.Candidate.SDPMLineIndex, UsernameFragment: v.Candidate.UsernameFragment}
		if err := pc.AddICECandidate(c); err != nil {
			p.send(signal.Error{Code: signal.CodeBadMessage, Message: fmt.Sprintf("candidate: %v", err)})
			return
		}
		p.candidates++
	case signal.State:
		if p.allowStateChange() {
			p.room.setState(p, v)
		}
	case signal.Mute:
		if !p.info.Host {
			p.send(signal.Error{Code: signal.CodeForbidden, Message: "mute: only a host may mute others"})
			return
		}
		if !p.allowStateChange() {
			return
		}
		if err := p.room.mute(p, v.Participant); err != nil {
			p.send(hostActionError("mute", err))
		}
	case signal.Remove:
		if !p.info.Host {
			p.send(signal.Error{Code: signal.CodeForbidden, Message: "remove: only a host may remove others"})
			return
		}
		if !p.allowStateChange() {
			return
		}
		if err := p.s.removeUser(p, v.Participant); err != nil {
			p.send(hostActionError("remove", err))
		}
	case signal.Leave:
		p.conn.Close("left")
	case signal.Join:
		p.send(signal.Error{Code: signal.CodeBadMessage, Message: "already joined"})
	default:
		p.send(signal.Error{Code: signal.CodeBadMessage, Message: fmt.Sprintf("%q is not a client message", m.MessageType())})
	}
}

// sendingTracks counts the audio and video sections of an offer that send
// media: not rejected (port 0), sendrecv (the default) or sendonly.
func sendingTracks(d *sdp.SessionDescription) int {
	n := 0
	for _, m := range d.MediaDescriptions {
		if k := m.MediaName.Media; (k != "audio" && k != "video") || m.MediaName.Port.Value == 0 {
			continue
		}
		_, recvonly := m.Attribute("recvonly")
		_, inactive := m.Attribute("inactive")
		if !recvonly && !inactive {
			n++
		}
	}
	return n
}

// maxCandidates bounds the ICE candidates a client may trickle over its
// connection's life, both peer connections together: a browser gathers a
// few per network interface and ICE server.
const maxCandidates = 128

// Offer rate of a participant: offerBurst at once, then one per second.
// After maxOffersRefused offers in a row refused for the rate, the
// connection is closed.
const (
	offerBurst       = 5
	offerPerSecond   = 1
	maxOffersRefused = 10
)

// State changes of a participant (state, and a host's mute and remove):
// stateBurst at once, then statePerSecond.
const (
	stateBurst     = 10
	statePerSecond = 2
)

// allowStateChange applies the state change rate; it runs on the reader
// goroutine only. When the change is over the limit it answers the client.
func (p *participant) allowStateChange() bool {
	if p.stateLimit.Allow() {
		return true
	}
	p.send(signal.Error{Code: signal.CodeBadMessage, Message: fmt.Sprintf("too many state changes: at most %d at once and %d per second", stateBurst, statePerSecond)})
	return false
}

// Errors of a host's mute and remove.
var (
	errNoParticipant = errors.New("no such participant in the room")
	errHostTarget    = errors.New("a host cannot be muted or removed")
)

// hostActionError is the error message answering a refused mute or remove.
func hostActionError(what string, err error) signal.Error {
	code := signal.CodeBadMessage
	if errors.Is(err, errHostTarget) {
		code = signal.CodeForbidden
	}
	return signal.Error{Code: code, Message: what + ": " + err.Error()}
}

// checkOffer validates o before anything of it is recorded: at most
// MaxTracksPerParticipant tracks listed, an SDP that parses, and at most
// MaxTracksPerParticipant sections sending media. (Decode already bounded
// the sizes of the SDP and of the track ids.)
func checkOffer(o signal.Offer) error {
	if n := len(o.Tracks); n > MaxTracksPerParticipant {
		return fmt.Errorf("the offer lists %d tracks, at most %d per participant: offer refused, nothing changed", n, MaxTracksPerParticipant)
	}
	var d sdp.SessionDescription
	if err := d.UnmarshalString(o.SDP); err != nil {
		return fmt.Errorf("the offer's SDP does not parse (%.120s): offer refused, nothing changed", err.Error())
	}
	if n := sendingTracks(&d); n > MaxTracksPerParticipant {
		return fmt.Errorf("the offer sends %d tracks, at most %d per participant: offer refused, nothing changed", n, MaxTracksPerParticipant)
	}
	return nil
}

// allowOffer applies the offer rate; it runs on the reader goroutine only.
// It reports whether the offer may be handled; when not, it has answered
// the client, and closed the connection once the client kept on.
func (p *participant) allowOffer() bool {
	if p.offerLimit.Allow() {
		p.offersRefused = 0
		return true
	}
	p.offersRefused++
	if p.offersRefused > maxOffersRefused {
		p.log.Info("too many offers: connection closed")
		p.send(signal.Error{Code: signal.CodeNegotiation, Message: "too many offers: connection closed"})
		p.conn.Close("too many offers")
		return false
	}
	p.send(signal.Error{Code: signal.CodeNegotiation, Message: fmt.Sprintf("too many offers: at most %d at once and %d per second: offer refused, nothing changed", offerBurst, offerPerSecond)})
	return false
}

// answerOffer answers the client's offer on the publish peer connection.
func (p *participant) answerOffer(o signal.Offer) error {
	if err := checkOffer(o); err != nil {
		return err
	}
	sources := make(map[string]string, len(o.Tracks))
	for _, t := range o.Tracks {
		sources[t.ID] = t.Source
	}
	pub, err := p.publishPC()
	if err != nil {
		return err
	}
	// The offer names the sources of the tracks it sends now: those of an
	// earlier offer are gone or named again.
	p.mu.Lock()
	p.sources = sources
	p.mu.Unlock()
	if err := pub.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: o.SDP}); err != nil {
		return fmt.Errorf("set offer: %w", err)
	}
	ans, err := pub.CreateAnswer(nil)
	if err != nil {
		return fmt.Errorf("create answer: %w", err)
	}
	gathered := webrtc.GatheringCompletePromise(pub)
	if err := pub.SetLocalDescription(ans); err != nil {
		return fmt.Errorf("set answer: %w", err)
	}
	if err := p.waitGathered(gathered); err != nil {
		return err
	}
	p.send(signal.Answer{SDP: pub.LocalDescription().SDP})
	return nil
}

// acceptAnswer applies the client's answer to the server's last offer and
// offers again if something changed in the meantime.
func (p *participant) acceptAnswer(a signal.Answer) error {
	p.negMu.Lock()
	defer p.negMu.Unlock()
	if !p.offerPending {
		return errors.New("answer without an offer")
	}
	if err := p.sub.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: a.SDP}); err != nil {
		return fmt.Errorf("set answer: %w", err)
	}
	p.offerPending = false
	if p.again {
		p.again = false
		return p.offerLocked()
	}
	return nil
}

// negotiate offers the current set of subscriptions, now or, when an offer
// is waiting for its answer, right after that answer.
func (p *participant) negotiate() {
	p.negMu.Lock()
	defer p.negMu.Unlock()
	if p.offerPending {
		p.again = true
		return
	}
	if err := p.offerLocked(); err != nil && !errors.Is(err, signal.ErrClosed) {
		p.log.Warn("subscribe offer failed", "err", err)
	}
}

func (p *participant) offerLocked() error {
	if p.sub.ConnectionState() == webrtc.PeerConnectionStateClosed {
		return nil
	}
	offer, err := p.sub.CreateOffer(nil)
	if err != nil {
		return fmt.Errorf("create offer: %w", err)
	}
	gathered := webrtc.GatheringCompletePromise(p.sub)
	if err := p.sub.SetLocalDescription(offer); err != nil {
		return fmt.Errorf("set offer: %w", err)
	}
	p.offerPending = true // from here on only an answer moves the state on
	if err := p.waitGathered(gathered); err != nil {
		return err
	}
	p.send(signal.Offer{SDP: p.sub.LocalDescription().SDP})
	return nil
}

// gatherTimeout bounds ICE gathering; with one UDP port and host
// candidates only it completes at once.
const gatherTimeout = 5 * time.Second

// waitGathered waits for ICE gathering unless the session ends first.
func (p *participant) waitGathered(gathered <-chan struct{}) error {
	t := time.NewTimer(gatherTimeout)
	defer t.Stop()
	select {
	case <-gathered:
		return nil
	case <-p.conn.Done():
		return signal.ErrClosed
	case <-t.C:
		return errors.New("ICE gathering did not complete")
	}
}

// onTrack publishes a track the client sends.
func (p *participant) onTrack(remote *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
	kind := remote.Kind().String()
	p.mu.Lock()
	source, ok := p.sources[remote.ID()]
	if !ok {
		source = signal.SourceCamera
		if remote.Kind() == webrtc.RTPCodecTypeAudio {
			source = signal.SourceAudio
		}
	}
	closed := p.closed
	if len(p.owned) >= MaxTracksPerParticipant {
		p.mu.Unlock()
		p.send(signal.Error{Code: signal.CodeNegotiation, Message: fmt.Sprintf("at most %d tracks per participant: %s is not forwarded", MaxTracksPerParticipant, remote.ID())})
		return
	}
	info := signal.Track{ID: p.info.ID + "/" + remote.ID(), Participant: p.info.ID, Kind: kind, Source: source}
	if _, dup := p.owned[info.ID]; dup {
		info.ID += "/" + uuid.NewString()[:8]
	}
	t := newPublishedTrack(info, remote, p, p.pub, p.s.m)
	if !closed {
		p.owned[info.ID] = t
	}
	p.mu.Unlock()
	if closed {
		return
	}
	p.log.Info("track published", "track", info.ID, "kind", kind, "source", source, "codec", remote.Codec().MimeType)
	p.room.publish(t)
	t.forward()
	p.mu.Lock()
	delete(p.owned, info.ID)
	p.mu.Unlock()
	p.room.unpublish(t)
	p.log.Info("track unpublished", "track", info.ID)
}

// subscribe starts sending t to p.
func (p *participant) subscribe(t *publishedTrack) {
	if p.addSubscription(t) {
		p.negotiate()
	}
}

// addSubscription adds t to the subscribe connection without offering it.
func (p *participant) addSubscription(t *publishedTrack) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || t.ended.Load() || p.senders[t] != nil {
		return false
	}
	s, err := p.sub.AddTrack(t)
	if err != nil {
		p.log.Warn("subscribe failed", "track", t.info.ID, "err", err)
		return false
	}
	p.senders[t] = s
	go t.readRTCP(s, p)
	return true
}

// unsubscribe stops sending t to p.
func (p *participant) unsubscribe(t *publishedTrack) {
	p.mu.Lock()
	s := p.senders[t]
	delete(p.senders, t)
	closed := p.closed
	p.mu.Unlock()
	if s == nil || closed {
		return
	}
	if err := p.sub.RemoveTrack(s); err != nil {
		p.log.Debug("remove track", "track", t.info.ID, "err", err)
	}
	p.negotiate()
}

// onChat relays a message of p's chat channel to the room.
func (p *participant) onChat(msg webrtc.DataChannelMessage) {
	if !msg.IsString {
		p.send(signal.Error{Code: signal.CodeBadChat, Message: "chat messages are text"})
		return
	}
	c, err := signal.DecodeChat(msg.Data)
	if err != nil {
		p.send(signal.Error{Code: signal.CodeBadChat, Message: err.Error()})
		return
	}
	if !p.chatLimit.Allow() {
		p.send(signal.Error{Code: signal.CodeBadChat, Message: "too many chat messages: at most 2 per second"})
		return
	}
	p.room.chat(p, c.Text, p.s.cfg.Now())
}

func (p *participant) chatReady() bool {
	return p.room.chatOpen(p)
}

func (p *participant) sendChat(b []byte) {
	if err := p.chat.SendText(string(b)); err != nil {
		p.log.Debug("chat send failed", "err", err)
	}
}

// finish marks p's session over.
func (p *participant) finish() { p.leftOnce.Do(func() { close(p.left) }) }

// close ends p's media; its published tracks end and leave the room.
func (p *participant) close() {
	p.detach()
	p.closeMedia()
}

// detach marks p closed and unpublishes its tracks; it reports whether
// this call did it.
func (p *participant) detach() bool {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return false
	}
	p.closed = true
	owned := make([]*publishedTrack, 0, len(p.owned))
	for _, t := range p.owned {
		owned = append(owned, t)
	}
	p.mu.Unlock()
	for _, t := range owned {
		p.room.unpublish(t)
	}
	return true
}

// closeMedia closes p's peer connections.
func (p *participant) closeMedia() {
	p.mu.Lock()
	pub := p.pub
	p.mu.Unlock()
	if pub != nil {
		if err := peer.Close(pub); err != nil {
			p.log.Debug("close publish peer connection", "err", err)
		}
	}
	if err := peer.Close(p.sub); err != nil {
		p.log.Debug("close subscribe peer connection", "err", err)
	}
}
