package sfu

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/pion/ice/v2"
	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v3"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"meeting.dev/meeting/media/internal/pionlog"
	"meeting.dev/meeting/media/internal/rawudp"
	"meeting.dev/meeting/media/signal"
	"meeting.dev/meeting/media/token"
)

// ErrClosing is returned for joins while the SFU shuts down.
var ErrClosing = errors.New("server is shutting down")

// SFU holds the rooms of one server. Rooms are created by their first join
// and removed when their last participant leaves.
type SFU struct {
	cfg      Config
	log      *slog.Logger
	pubAPI   *webrtc.API // publish peer connections: NACK generator, reports, TWCC feedback
	subAPI   *webrtc.API // subscribe peer connections: reports; NACKs answered from the track cache
	m        *metrics
	upgrader websocket.Upgrader
	mux      ice.UDPMux

	mu       sync.Mutex
	rooms    map[string]*Room
	draining bool
	closed   bool
	sessions sync.WaitGroup // one per WebSocket session
	cancel   context.CancelFunc
	ctx      context.Context
}

// New returns an SFU whose ICE traffic all goes through iceConn, a UDP
// socket the caller owns and closes after Close. cfg is validated.
func New(cfg Config, iceConn net.PacketConn) (*SFU, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("sfu config: %w", err)
	}
	m, err := newMetrics()
	if err != nil {
		return nil, err
	}
	s := &SFU{cfg: cfg, log: cfg.Logger, m: m, rooms: map[string]*Room{}}
	s.ctx, s.cancel = context.WithCancel(context.Background())

	iceConn = rawudp.New(iceConn)
	lf := pionlog.New(cfg.Logger)
	se := webrtc.SettingEngine{LoggerFactory: lf}
	s.mux = webrtc.NewICEUDPMux(lf.NewLogger("udpmux"), iceConn)
	se.SetICEUDPMux(s.mux)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6})
	if ua, ok := iceConn.LocalAddr().(*net.UDPAddr); ok && ua.IP.IsLoopback() {
		se.SetIncludeLoopbackCandidate(true)
	}
	if len(cfg.PublicIPs) > 0 {
		se.SetNAT1To1IPs(cfg.PublicIPs, webrtc.ICECandidateTypeHost)
	}
	if s.pubAPI, err = newAPI(se, true); err != nil {
		return nil, err
	}
	if s.subAPI, err = newAPI(se, false); err != nil {
		return nil, err
	}
	s.upgrader = websocket.Upgrader{
		ReadBufferSize:  4096,
		WriteBufferSize: 4096,
		CheckOrigin:     s.checkOrigin,
	}
	return s, nil
}

// newAPI returns a pion API with the default codecs (whose video feedback
// includes nack, nack pli and ccm fir) and, for publishing, pion's default
// interceptors: NACK generator, RTCP reports and TWCC feedback. Subscribing
// connections get RTCP reports only: the SFU answers their NACKs from one
// cache per track instead of a copy of every packet per subscriber.
func newAPI(se webrtc.SettingEngine, publish bool) (*webrtc.API, error) {
	me := &webrtc.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		return nil, fmt.Errorf("register codecs: %w", err)
	}
	ir := &interceptor.Registry{}
	var err error
	if publish {
		err = webrtc.RegisterDefaultInterceptors(me, ir)
	} else {
		err = webrtc.ConfigureRTCPReports(ir)
	}
	if err != nil {
		return nil, fmt.Errorf("register interceptors: %w", err)
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se)), nil
}

// Handler serves /ws (signalling), /healthz, /readyz and /metrics.
func (s *SFU) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/ws", s.serveWS)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		s.mu.Lock()
		draining := s.draining || s.closed
		s.mu.Unlock()
		if draining {
			http.Error(w, "draining", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.Handle("/metrics", promhttp.HandlerFor(s.m.reg, promhttp.HandlerOpts{}))
	return mux
}

// checkOrigin accepts requests without Origin (non-browser clients), from
// the same host, or from an allowed origin.
func (s *SFU) checkOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	for _, o := range s.cfg.AllowedOrigins {
		if o == "*" || strings.EqualFold(o, origin) {
			return true
		}
	}
	u, err := url.Parse(origin)
	if err != nil {
		return false
	}
	return strings.EqualFold(u.Host, r.Host)
}

// serveWS authenticates a signalling connection and runs its session.
func (s *SFU) serveWS(w http.ResponseWriter, r *http.Request) {
	var claims *token.Claims
	if tok := r.URL.Query().Get("token"); tok != "" {
		c, err := token.Verify(s.cfg.TokenKey, tok, s.cfg.Room, s.cfg.Now())
		if err != nil {
			s.m.joins.WithLabelValues("unauthorized").Inc()
			http.Error(w, "join token refused: "+err.Error(), http.StatusUnauthorized)
			return
		}
		claims = &c
	}
	if !s.startSession() {
		http.Error(w, ErrClosing.Error(), http.StatusServiceUnavailable)
		return
	}
	defer s.sessions.Done()
	ws, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader answered the request
	}
	conn := signal.NewConn(ws)
	s.session(conn, claims)
}

func (s *SFU) startSession() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.draining || s.closed {
		return false
	}
	s.sessions.Add(1)
	return true
}

// session runs one signalling connection from the join to the end.
func (s *SFU) session(conn *signal.Conn, claims *token.Claims) {
	var (
		p      *participant
		joined = make(chan struct{})
	)
	timer := time.AfterFunc(s.cfg.JoinTimeout, func() {
		select {
		case <-joined:
		default:
			_ = conn.Send(signal.Error{Code: signal.CodeUnauthorized, Message: "no join message in time"})
			conn.Close("join timeout")
		}
	})
	defer timer.Stop()
	admit := func(c token.Claims) {
		var err error
		p, err = s.join(conn, c)
		if err != nil {
			code := signal.CodeInternal
			switch {
			case errors.Is(err, ErrRoomFull):
				code = signal.CodeRoomFull
			case errors.Is(err, ErrClosing):
				code = signal.CodeClosing
			}
			_ = conn.Send(signal.Error{Code: code, Message: err.Error()})
			conn.Close(code)
			return
		}
		close(joined)
	}
	if claims != nil {
		admit(*claims)
	}
	err := conn.Run(s.ctx, func(m signal.Message) {
		if p != nil {
			p.handle(m)
			return
		}
		select {
		case <-conn.Done():
			return
		default:
		}
		j, ok := m.(signal.Join)
		if !ok {
			_ = conn.Send(signal.Error{Code: signal.CodeNotJoined, Message: "the first message must be join"})
			return
		}
		c, err := token.Verify(s.cfg.TokenKey, j.Token, s.cfg.Room, s.cfg.Now())
		if err != nil {
			s.m.joins.WithLabelValues("unauthorized").Inc()
			_ = conn.Send(signal.Error{Code: signal.CodeUnauthorized, Message: "join token refused: " + err.Error()})
			conn.Close("unauthorized")
			return
		}
		admit(c)
	})
	if p != nil {
		s.leave(p)
		if err != nil {
			p.log.Info("signalling ended", "err", err)
		}
	}
}

// join admits a participant with claims c into its room.
func (s *SFU) join(conn *signal.Conn, c token.Claims) (*participant, error) {
	p, err := s.newParticipant(conn, c.User, c.Name)
	if err != nil {
		s.m.joins.WithLabelValues("error").Inc()
		return nil, err
	}
	s.mu.Lock()
	if s.draining || s.closed {
		s.mu.Unlock()
		p.close()
		s.m.joins.WithLabelValues("closing").Inc()
		return nil, ErrClosing
	}
	r := s.rooms[c.Room]
	created := r == nil
	if created {
		r = newRoom(c.Room, s.cfg.MaxParticipants, s.m)
	}
	others, tracks, err := r.add(p)
	if err != nil {
		s.mu.Unlock()
		p.close()
		s.m.joins.WithLabelValues("full").Inc()
		return nil, fmt.Errorf("room %s: %w", c.Room, err)
	}
	if created {
		s.rooms[c.Room] = r
		s.m.rooms.Inc()
	}
	p.room = r
	s.m.participants.Inc()
	s.mu.Unlock()
	s.m.joins.WithLabelValues("ok").Inc()

	j := signal.Joined{Room: r.id, You: p.info, Participants: make([]signal.Participant, 0, len(others)), Tracks: make([]signal.Track, 0, len(tracks))}
	for _, o := range others {
		j.Participants = append(j.Participants, o.info)
	}
	for _, t := range tracks {
		j.Tracks = append(j.Tracks, t.info)
	}
	p.send(j)
	r.broadcast(signal.ParticipantJoined{Participant: p.info}, p)
	p.log.Info("joined", "room", r.id, "name", c.Name)
	for _, t := range tracks {
		p.addSubscription(t)
	}
	p.negotiate() // the chat channel and the room's tracks
	return p, nil
}

// leave takes p out of its room, removing the room when it empties.
func (s *SFU) leave(p *participant) {
	p.detach()
	s.mu.Lock()
	_, empty := p.room.remove(p)
	if empty && s.rooms[p.room.id] == p.room {
		delete(s.rooms, p.room.id)
		s.m.rooms.Dec()
	}
	s.m.participants.Dec()
	s.mu.Unlock()
	p.room.broadcast(signal.ParticipantLeft{Participant: p.info}, p)
	p.log.Info("left", "room", p.room.id)
	p.closeMedia()
}

// Shutdown refuses new joins, tells every participant the server is
// closing, and waits up to the drain timeout (or ctx) for them to leave;
// then it closes the rest. It returns when every session has ended.
func (s *SFU) Shutdown(ctx context.Context) {
	s.mu.Lock()
	s.draining = true
	ps := s.participantsLocked()
	s.mu.Unlock()
	deadline := time.Now().Add(s.cfg.DrainTimeout)
	for _, p := range ps {
		p.send(signal.Closing{Reason: "server shutting down", Deadline: deadline.UTC()})
	}
	done := make(chan struct{})
	go func() {
		s.sessions.Wait()
		close(done)
	}()
	t := time.NewTimer(s.cfg.DrainTimeout)
	defer t.Stop()
	select {
	case <-done:
		s.Close()
		return
	case <-t.C:
	case <-ctx.Done():
	}
	s.Close()
	<-done
}

// Close ends every session at once and waits for them.
func (s *SFU) Close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	s.sessions.Wait()
	_ = s.mux.Close()
}

func (s *SFU) participantsLocked() []*participant {
	var ps []*participant
	for _, r := range s.rooms {
		ps = append(ps, r.list()...)
	}
	return ps
}

// Rooms returns the number of rooms.
func (s *SFU) Rooms() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.rooms)
}

// Participants returns the number of participants in room id.
func (s *SFU) Participants(id string) int {
	s.mu.Lock()
	r := s.rooms[id]
	s.mu.Unlock()
	if r == nil {
		return 0
	}
	return r.len()
}

// chatReady reports whether participant id's chat channel is open (tests).
func (s *SFU) chatReady(id string) bool {
	s.mu.Lock()
	ps := s.participantsLocked()
	s.mu.Unlock()
	for _, p := range ps {
		if p.info.ID == id {
			return p.chatReady()
		}
	}
	return false
}
