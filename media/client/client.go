// Package client is a Go participant of the SFU: it joins a room with a
// token, publishes synthetic Opus and VP8 media, receives everyone else's
// tracks while counting and timing their packets, chats, and changes its own
// state or, as a host, mutes and removes others. The tests of the SFU and
// `meeting loadtest` use it.
package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/pion/ice/v2"
	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v3"

	"meeting.dev/meeting/media/internal/peer"
	"meeting.dev/meeting/media/internal/pionlog"
	"meeting.dev/meeting/media/signal"
)

// Options configure Join.
type Options struct {
	// URL is the signalling WebSocket, such as ws://127.0.0.1:7880/ws.
	URL string
	// Token is the join token, sent in the first message (a join).
	Token string
	// TokenInQuery passes the token as ?token= instead of a join message.
	// Discouraged: a URL ends up in proxies' access logs. It is kept for
	// testing the server's compatibility path.
	TokenInQuery bool
	// Origin is sent as the Origin header; empty means URL's origin (http
	// for ws, https for wss, and URL's host and port), as a browser on the
	// SFU's own page sends. The SFU refuses requests without Origin unless
	// configured to accept them.
	Origin string
	// ICEServers are STUN/TURN servers for both peer connections.
	ICEServers []webrtc.ICEServer
	// RelayOnly restricts ICE to relay (TURN) candidates.
	RelayOnly bool
	// Logger receives the client's logs (default: discarded).
	Logger *slog.Logger
}

// Client is one participant.
type Client struct {
	opts Options
	log  *slog.Logger
	conn *signal.Conn
	api  *webrtc.API
	cfg  webrtc.Configuration
	sub  *webrtc.PeerConnection
	you  signal.Participant
	room string

	runDone   chan struct{}
	runErr    error
	answers   chan answerResult
	chatOpen  chan struct{}
	chatOnce  sync.Once
	offerMu   sync.Mutex // one publish negotiation at a time; guards pub
	pub       *webrtc.PeerConnection
	closeOnce sync.Once
	wg        sync.WaitGroup

	mu           sync.Mutex
	participants map[string]signal.Participant
	self         signal.Participant      // you of joined with the state of the last participant_updated about us
	updates      []signal.Participant    // of every participant_updated, in order
	mutedBy      []signal.Participant    // of every muted, in order
	announced    map[string]signal.Track // track id -> info
	received     map[string]*Received    // track id -> stats, once media arrived
	published    map[string]*Publisher
	chats        []signal.ChatMessage
	types        []string // of every server message, in order
	errs         []signal.Error
	closing      *signal.Closing
	ending       *signal.Ending
	closed       bool
	chat         *webrtc.DataChannel

	nacks, nackedPackets atomic.Uint64 // sent (nackcount.go)
}

// gatherTimeout bounds ICE gathering (host and, with TURN, relay candidates).
const gatherTimeout = 10 * time.Second

type answerResult struct {
	sdp string
	err error
}

// Join connects to the SFU and joins the room of the token. It returns
// once the server accepted the join; the server then offers the subscribe
// connection with the chat channel (see ChatOpen) and the room's tracks.
func Join(ctx context.Context, opts Options) (*Client, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Client{
		opts: opts, log: opts.Logger,
		runDone:      make(chan struct{}),
		answers:      make(chan answerResult, 4),
		chatOpen:     make(chan struct{}),
		participants: map[string]signal.Participant{},
		announced:    map[string]signal.Track{},
		received:     map[string]*Received{},
		published:    map[string]*Publisher{},
	}
	if err := c.newPeerConnections(); err != nil {
		return nil, err
	}
	u := opts.URL
	if opts.TokenInQuery {
		pu, err := url.Parse(u)
		if err != nil {
			c.closePCs()
			return nil, fmt.Errorf("client: url: %w", err)
		}
		q := pu.Query()
		q.Set("token", opts.Token)
		pu.RawQuery = q.Encode()
		u = pu.String()
	}
	origin := opts.Origin
	if origin == "" {
		var err error
		if origin, err = OriginOf(opts.URL); err != nil {
			c.closePCs()
			return nil, err
		}
	}
	h := http.Header{"Origin": {origin}}
	ws, resp, err := websocket.DefaultDialer.DialContext(ctx, u, h)
	if resp != nil && resp.Body != nil {
		_ = resp.Body.Close()
	}
	if err != nil {
		c.closePCs()
		if resp != nil {
			return nil, fmt.Errorf("client: dial %s: %w (HTTP %d)", opts.URL, err, resp.StatusCode)
		}
		return nil, fmt.Errorf("client: dial %s: %w", opts.URL, err)
	}
	c.conn = signal.NewConn(ws)
	joined := make(chan signal.Message, 1)
	go func() {
		defer close(c.runDone)
		c.runErr = c.conn.Run(context.Background(), func(m signal.Message) { c.handle(m, joined) })
	}()
	if !opts.TokenInQuery {
		if err := c.conn.Send(signal.Join{Token: opts.Token}); err != nil {
			c.Close()
			return nil, fmt.Errorf("client: send join: %w", err)
		}
	}
	var reply signal.Message
	select {
	case reply = <-joined:
	case <-c.runDone:
		select {
		case reply = <-joined: // the reply came with the close
		default:
			c.Close()
			return nil, fmt.Errorf("client: connection ended before join: %v", c.runErr)
		}
	case <-ctx.Done():
		c.Close()
		return nil, fmt.Errorf("client: join: %w", ctx.Err())
	}
	if e, ok := reply.(signal.Error); ok {
		c.Close()
		return nil, fmt.Errorf("client: join refused: %w", e)
	}
	return c, nil
}

// OriginOf returns the web origin of a signalling URL: http://host[:port]
// for ws://host[:port]/…, https://host[:port] for wss://.
func OriginOf(signalURL string) (string, error) {
	u, err := url.Parse(signalURL)
	if err != nil {
		return "", fmt.Errorf("client: url: %w", err)
	}
	switch u.Scheme {
	case "ws", "http":
		return "http://" + u.Host, nil
	case "wss", "https":
		return "https://" + u.Host, nil
	}
	return "", fmt.Errorf("client: url %q: scheme %q is not ws or wss", signalURL, u.Scheme)
}

func (c *Client) newPeerConnections() error {
	me := &webrtc.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		return fmt.Errorf("client: codecs: %w", err)
	}
	ir := &interceptor.Registry{}
	ir.Add(nackCounterFactory{&c.nacks, &c.nackedPackets}) // first: the NACK generator writes through it
	if err := webrtc.RegisterDefaultInterceptors(me, ir); err != nil {
		return fmt.Errorf("client: interceptors: %w", err)
	}
	se := webrtc.SettingEngine{LoggerFactory: pionlog.New(nil)}
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetIncludeLoopbackCandidate(true)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	c.api = webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se))
	c.cfg = webrtc.Configuration{ICEServers: c.opts.ICEServers}
	if c.opts.RelayOnly {
		c.cfg.ICETransportPolicy = webrtc.ICETransportPolicyRelay
	}
	var err error
	if c.sub, err = c.api.NewPeerConnection(c.cfg); err != nil {
		return fmt.Errorf("client: subscribe peer connection: %w", err)
	}
	c.sub.OnTrack(c.onTrack)
	c.sub.OnDataChannel(func(dc *webrtc.DataChannel) {
		if dc.Label() != "chat" {
			return
		}
		c.mu.Lock()
		c.chat = dc
		c.mu.Unlock()
		dc.OnOpen(func() { c.chatOnce.Do(func() { close(c.chatOpen) }) })
		dc.OnMessage(c.onChat)
	})
	return nil
}

// publishPC returns the publish peer connection, creating it on first use;
// the caller holds offerMu.
func (c *Client) publishPC() (*webrtc.PeerConnection, error) {
	if c.pub != nil {
		return c.pub, nil
	}
	pc, err := c.api.NewPeerConnection(c.cfg)
	if err != nil {
		return nil, fmt.Errorf("client: publish peer connection: %w", err)
	}
	c.pub = pc
	return pc, nil
}

func (c *Client) closePCs() {
	c.offerMu.Lock()
	pub := c.pub
	c.offerMu.Unlock()
	if pub != nil {
		_ = peer.Close(pub)
	}
	if c.sub != nil {
		_ = peer.Close(c.sub)
	}
}

// handle runs on the signalling reader for each server message.
func (c *Client) handle(m signal.Message, joined chan<- signal.Message) {
	c.mu.Lock()
	c.types = append(c.types, m.MessageType())
	c.mu.Unlock()
	switch v := m.(type) {
	case signal.Joined:
		c.mu.Lock()
		c.you, c.room, c.self = v.You, v.Room, v.You
		for _, p := range v.Participants {
			c.participants[p.ID] = p
		}
		for _, t := range v.Tracks {
			c.announced[t.ID] = t
		}
		c.mu.Unlock()
		joined <- v
	case signal.Offer:
		if err := c.answer(v); err != nil && !errors.Is(err, signal.ErrClosed) {
			c.log.Warn("subscribe offer failed", "err", err)
		}
	case signal.Answer:
		select {
		case c.answers <- answerResult{sdp: v.SDP}:
		default:
			c.log.Warn("unexpected answer dropped")
		}
	case signal.ParticipantJoined:
		c.mu.Lock()
		c.participants[v.Participant.ID] = v.Participant
		c.mu.Unlock()
	case signal.ParticipantLeft:
		c.mu.Lock()
		delete(c.participants, v.Participant.ID)
		c.mu.Unlock()
	case signal.ParticipantUpdated:
		c.mu.Lock()
		c.updates = append(c.updates, v.Participant)
		if v.Participant.ID == c.you.ID {
			c.self = v.Participant
		} else if _, ok := c.participants[v.Participant.ID]; ok {
			c.participants[v.Participant.ID] = v.Participant
		}
		c.mu.Unlock()
	case signal.Muted:
		c.mu.Lock()
		c.mutedBy = append(c.mutedBy, v.By)
		c.mu.Unlock()
	case signal.TrackPublished:
		c.mu.Lock()
		c.announced[v.Track.ID] = v.Track
		c.mu.Unlock()
	case signal.TrackUnpublished:
		c.mu.Lock()
		delete(c.announced, v.Track.ID)
		if r := c.received[v.Track.ID]; r != nil {
			r.removed.Store(true)
		}
		c.mu.Unlock()
	case signal.Closing:
		c.mu.Lock()
		c.closing = &v
		c.mu.Unlock()
	case signal.Ending:
		c.mu.Lock()
		c.ending = &v
		c.mu.Unlock()
	case signal.Error:
		c.mu.Lock()
		c.errs = append(c.errs, v)
		joinedYet := c.you.ID != ""
		c.mu.Unlock()
		if !joinedYet {
			select {
			case joined <- v:
			default:
			}
		}
		if v.Code == signal.CodeNegotiation {
			select {
			case c.answers <- answerResult{err: v}:
			default:
			}
		}
	}
}

// answer answers a server offer on the subscribe peer connection.
func (c *Client) answer(o signal.Offer) error {
	if err := c.sub.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: o.SDP}); err != nil {
		return fmt.Errorf("set offer: %w", err)
	}
	a, err := c.sub.CreateAnswer(nil)
	if err != nil {
		return fmt.Errorf("create answer: %w", err)
	}
	gathered := webrtc.GatheringCompletePromise(c.sub)
	if err := c.sub.SetLocalDescription(a); err != nil {
		return fmt.Errorf("set answer: %w", err)
	}
	t := time.NewTimer(gatherTimeout)
	defer t.Stop()
	select {
	case <-gathered:
	case <-c.conn.Done():
		return signal.ErrClosed
	case <-t.C:
		return errors.New("ICE gathering did not complete")
	}
	return c.conn.Send(signal.Answer{SDP: c.sub.LocalDescription().SDP})
}

// negotiateLocked offers the publish peer connection's current state and
// applies the server's answer; the caller holds offerMu.
func (c *Client) negotiateLocked(ctx context.Context) error {
	offer, err := c.pub.CreateOffer(nil)
	if err != nil {
		return fmt.Errorf("client: create offer: %w", err)
	}
	gathered := webrtc.GatheringCompletePromise(c.pub)
	if err := c.pub.SetLocalDescription(offer); err != nil {
		return fmt.Errorf("client: set offer: %w", err)
	}
	select {
	case <-gathered:
	case <-ctx.Done():
		return fmt.Errorf("client: gathering: %w", ctx.Err())
	}
	c.mu.Lock()
	var tracks []signal.TrackSource
	for _, p := range c.published {
		if !p.stopped {
			tracks = append(tracks, signal.TrackSource{ID: p.track.ID(), Source: p.source})
		}
	}
	c.mu.Unlock()
	if err := c.conn.Send(signal.Offer{SDP: c.pub.LocalDescription().SDP, Tracks: tracks}); err != nil {
		return fmt.Errorf("client: send offer: %w", err)
	}
	select {
	case a := <-c.answers:
		if a.err != nil {
			return fmt.Errorf("client: offer refused: %w", a.err)
		}
		if err := c.pub.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: a.sdp}); err != nil {
			return fmt.Errorf("client: set answer: %w", err)
		}
		return nil
	case <-c.runDone:
		return fmt.Errorf("client: connection ended while negotiating: %v", c.runErr)
	case <-ctx.Done():
		return fmt.Errorf("client: waiting for answer: %w", ctx.Err())
	}
}

// ID is this participant's id in the room.
func (c *Client) ID() string { return c.you.ID }

// Room is the room joined.
func (c *Client) Room() string { return c.room }

// Participants returns the others in the room.
func (c *Client) Participants() []signal.Participant {
	c.mu.Lock()
	defer c.mu.Unlock()
	ps := make([]signal.Participant, 0, len(c.participants))
	for _, p := range c.participants {
		ps = append(ps, p)
	}
	return ps
}

// You returns this participant as the server last described it: the you of
// joined, then the state of each participant_updated about it.
func (c *Client) You() signal.Participant {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.self
}

// Participant returns the other participant id as last described, and
// whether it is in the room.
func (c *Client) Participant(id string) (signal.Participant, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.participants[id]
	return p, ok
}

// Updates returns the participant of every participant_updated received,
// in order.
func (c *Client) Updates() []signal.Participant {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]signal.Participant(nil), c.updates...)
}

// MutedBy returns the host of every muted received, in order.
func (c *Client) MutedBy() []signal.Participant {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]signal.Participant(nil), c.mutedBy...)
}

// Removed reports whether the server sent the error removed: a host
// removed this participant's user from the room.
func (c *Client) Removed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.errs {
		if e.Code == signal.CodeRemoved {
			return true
		}
	}
	return false
}

// SetState changes this participant's state: only the fields st gives.
// Everyone, this client included, gets participant_updated. Unmuting
// (AudioMuted false) makes the server forward the audio again.
func (c *Client) SetState(st signal.State) error {
	return c.sendRequest(st)
}

// Mute asks the server to mute participant id's audio; only a host may.
func (c *Client) Mute(id string) error {
	return c.sendRequest(signal.Mute{Participant: id})
}

// Remove asks the server to remove the user of participant id from the
// room, every connection of it; only a host may.
func (c *Client) Remove(id string) error {
	return c.sendRequest(signal.Remove{Participant: id})
}

// sendRequest sends m; the server's reply, if any, comes as a message
// (see Updates, Errors).
func (c *Client) sendRequest(m signal.Message) error {
	if err := c.conn.Send(m); err != nil {
		return fmt.Errorf("client: %s: %w", m.MessageType(), err)
	}
	return nil
}

// Errors returns the error messages the server sent.
func (c *Client) Errors() []signal.Error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]signal.Error(nil), c.errs...)
}

// Closing returns the server's closing notice, if one came.
func (c *Client) Closing() *signal.Closing {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closing
}

// MessageTypes returns the type of every server message received, in order.
func (c *Client) MessageTypes() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.types...)
}

// Ending returns the last warning that the room closes, if one came.
func (c *Client) Ending() *signal.Ending {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ending
}

// Done is closed when the signalling connection ended.
func (c *Client) Done() <-chan struct{} { return c.runDone }

// ErrChatNotOpen is returned by Chat before the chat channel opened.
var ErrChatNotOpen = errors.New("client: chat channel not open")

// ChatOpen is closed once the chat channel is open.
func (c *Client) ChatOpen() <-chan struct{} { return c.chatOpen }

// Chat sends text to the room.
func (c *Client) Chat(text string) error {
	select {
	case <-c.chatOpen:
	default:
		return ErrChatNotOpen
	}
	b, err := jsonMarshal(signal.ChatSend{Text: text})
	if err != nil {
		return err
	}
	c.mu.Lock()
	dc := c.chat
	c.mu.Unlock()
	if err := dc.SendText(string(b)); err != nil {
		return fmt.Errorf("client: chat: %w", err)
	}
	return nil
}

func (c *Client) onChat(msg webrtc.DataChannelMessage) {
	var m signal.ChatMessage
	if err := jsonUnmarshal(msg.Data, &m); err != nil {
		c.log.Warn("bad chat message", "err", err)
		return
	}
	c.mu.Lock()
	c.chats = append(c.chats, m)
	c.mu.Unlock()
}

// Chats returns the chat messages received, in order.
func (c *Client) Chats() []signal.ChatMessage {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]signal.ChatMessage(nil), c.chats...)
}

// Close leaves the room and releases everything; it waits for the
// client's goroutines.
func (c *Client) Close() {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closed = true
		pubs := make([]*Publisher, 0, len(c.published))
		for _, p := range c.published {
			pubs = append(pubs, p)
		}
		c.mu.Unlock()
		for _, p := range pubs {
			p.halt()
		}
		if c.conn != nil {
			c.conn.Close("leaving")
			<-c.runDone
		}
		c.closePCs()
		c.wg.Wait()
	})
}

// Wait polls cond every 10ms until it holds or ctx ends.
func Wait(ctx context.Context, cond func() bool) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}
