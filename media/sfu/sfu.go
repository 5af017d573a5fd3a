package sfu

import (
	"context"
	"encoding/json"
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

	"meeting.dev/meeting/media/internal/pionlog"
	"meeting.dev/meeting/media/internal/rawudp"
	"meeting.dev/meeting/media/signal"
	"meeting.dev/meeting/media/token"
)

// ErrClosing is returned for joins while the SFU shuts down.
var ErrClosing = errors.New("server is shutting down")

// ErrRemoved is returned for joins of a user a host removed from the room.
var ErrRemoved = errors.New("removed from the meeting by the host")

// SFU holds the rooms of one server. Rooms are created by their first join
// and removed when their last participant leaves.
type SFU struct {
	cfg      Config
	log      *slog.Logger
	pubAPI   *webrtc.API // publish peer connections: NACK generator, reports, TWCC feedback
	subAPI   *webrtc.API // subscribe peer connections: reports; NACKs answered from the track cache
	m        *metrics
	retx     *totalBudget // retransmissions of every room
	upgrader websocket.Upgrader
	mux      ice.UDPMux

	mu       sync.Mutex
	rooms    map[string]*Room
	warnings map[string]time.Time       // room id -> closesAt, from WarnRoom until CloseRoom
	removed  map[string]map[string]bool // room id -> users a host removed, until CloseRoom
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
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	s := &SFU{cfg: cfg, log: cfg.Logger, m: m, retx: newTotalBudget(), rooms: map[string]*Room{}, warnings: map[string]time.Time{},
		removed: map[string]map[string]bool{}}
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

// Handler serves the signalling WebSocket (docs/signaling.md) at whatever
// path it is mounted on. Health, readiness and metrics are the caller's:
// see Ready and Config.Registerer.
func (s *SFU) Handler() http.Handler {
	return http.HandlerFunc(s.serveWS)
}

// Ready reports whether the SFU accepts joins: false once Shutdown or
// Close began. Callers serve it as their readiness probe.
func (s *SFU) Ready() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.draining && !s.closed
}

// checkOrigin accepts a request from an allowed origin or from the same
// origin (scheme, host and port). A request without Origin is refused
// unless Config.AllowNoOrigin is set or AllowedOrigins holds "*": every
// browser sends Origin on a WebSocket upgrade, and our Go client sends the
// signalling URL's.
func (s *SFU) checkOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	for _, o := range s.cfg.AllowedOrigins {
		if o == "*" || (origin != "" && strings.EqualFold(o, origin)) {
			return true
		}
	}
	if origin == "" {
		return s.cfg.AllowNoOrigin
	}
	return sameOrigin(origin, r)
}

// sameOrigin reports whether origin names the scheme, host and port r was
// sent to; a port left out is the scheme's default. The request's scheme
// is https when the server terminated TLS, else X-Forwarded-Proto's when a
// proxy sent one, else http.
func sameOrigin(origin string, r *http.Request) bool {
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return false
	}
	scheme := requestScheme(r)
	if scheme != u.Scheme {
		return false
	}
	oh, op := hostPort(u.Host, u.Scheme)
	rh, rp := hostPort(r.Host, scheme)
	return strings.EqualFold(oh, rh) && op == rp
}

// requestScheme is "https" when r came over TLS, else the scheme a proxy
// named in X-Forwarded-Proto (http or https), else "http".
func requestScheme(r *http.Request) string {
	if r.TLS != nil {
		return "https"
	}
	p, _, _ := strings.Cut(r.Header.Get("X-Forwarded-Proto"), ",")
	if p = strings.ToLower(strings.TrimSpace(p)); p == "https" {
		return p
	}
	return "http"
}

// hostPort splits host[:port], giving the scheme's default port when none
// is written.
func hostPort(hostport, scheme string) (host, port string) {
	if h, p, err := net.SplitHostPort(hostport); err == nil {
		return strings.Trim(h, "[]"), p
	}
	if scheme == "https" {
		return strings.Trim(hostport, "[]"), "443"
	}
	return strings.Trim(hostport, "[]"), "80"
}

// serveWS authenticates a signalling connection and runs its session. The
// checks come in the order a client can act on: the Origin (403), then
// whether the server takes joins at all (503), then a token in the URL (401).
func (s *SFU) serveWS(w http.ResponseWriter, r *http.Request) {
	if !s.checkOrigin(r) {
		http.Error(w, "origin not allowed", http.StatusForbidden)
		return
	}
	if !s.startSession() {
		http.Error(w, ErrClosing.Error(), http.StatusServiceUnavailable)
		return
	}
	defer s.sessions.Done()
	var claims *token.Claims
	if tok := r.URL.Query().Get("token"); tok != "" {
		c, err := s.verify(tok)
		if err != nil {
			s.m.joins.WithLabelValues("unauthorized").Inc()
			http.Error(w, "join token refused: "+err.Error(), http.StatusUnauthorized)
			return
		}
		claims = &c
	}
	ws, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader answered the request
	}
	conn := signal.NewConn(ws)
	s.session(conn, claims)
}

// verify checks a join token with the key of the room it names.
func (s *SFU) verify(tok string) (token.Claims, error) {
	return token.VerifyWith(s.cfg.Keys, tok, "", s.cfg.Now())
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
			case errors.Is(err, ErrRemoved):
				code = signal.CodeRemoved
			case errors.Is(err, token.ErrNoRoom):
				code = signal.CodeUnauthorized
			}
			_ = conn.Send(signal.Error{Code: code, Message: err.Error()})
			conn.Close(code)
			return
		}
		close(joined)
	}
	refuse := func(reason string) {
		s.m.joins.WithLabelValues("unauthorized").Inc()
		_ = conn.Send(signal.Error{Code: signal.CodeUnauthorized, Message: reason})
		conn.Close("unauthorized")
	}
	// Before the join, anything but a join is not_joined; a join that does
	// not decode (no token, a token that is not a string) is refused.
	conn.OnBadMessage(func(raw []byte, e signal.Error) {
		if p != nil {
			_ = conn.Send(e)
			return
		}
		var head struct {
			Type string `json:"type"`
		}
		if raw != nil && json.Unmarshal(raw, &head) == nil && head.Type == signal.TypeJoin {
			refuse("join token refused: " + e.Message)
			return
		}
		_ = conn.Send(signal.Error{Code: signal.CodeNotJoined, Message: "the first message must be join: " + e.Message})
	})
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
		c, err := s.verify(j.Token)
		if err != nil {
			refuse("join token refused: " + err.Error())
			return
		}
		admit(c)
	})
	if p != nil {
		s.leave(p)
		if err != nil {
			p.log.Info("signalling ended", "err", err)
		}
		p.finish()
	}
}

// join admits a participant with claims c into its room.
func (s *SFU) join(conn *signal.Conn, c token.Claims) (*participant, error) {
	p, err := s.newParticipant(conn, c)
	if err != nil {
		s.m.joins.WithLabelValues("error").Inc()
		return nil, err
	}
	limit := s.cfg.MaxParticipants
	if s.cfg.RoomLimit != nil {
		if n := s.cfg.RoomLimit(c.Room); n > 0 {
			limit = n
		}
	}
	s.mu.Lock()
	if s.draining || s.closed {
		s.mu.Unlock()
		p.close()
		s.m.joins.WithLabelValues("closing").Inc()
		return nil, ErrClosing
	}
	if s.removed[c.Room][c.User] {
		s.mu.Unlock()
		p.close()
		s.m.joins.WithLabelValues("removed").Inc()
		return nil, ErrRemoved
	}
	r := s.rooms[c.Room]
	created := r == nil
	if created {
		r = newRoom(c.Room, s.m)
		r.closesAt = s.warnings[c.Room]
	}
	p.room = r
	tracks, err := r.add(p, limit, s.cfg.Now) // sends joined (and ending)
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
	s.m.participants.Inc()
	s.mu.Unlock()
	// The room may have closed between the token check and the admission:
	// CloseRoom either found p in the room or ran before the admission, so
	// after the caller withdrew the room's key.
	if _, err := s.cfg.Keys(c.Room); err != nil {
		s.remove(p)
		p.closeMedia()
		p.finish()
		s.m.joins.WithLabelValues("unauthorized").Inc()
		return nil, fmt.Errorf("%w: room %q: %w", token.ErrNoRoom, c.Room, err)
	}
	s.m.joins.WithLabelValues("ok").Inc()
	r.announce(p, p, func(d signal.Participant) signal.Message { return signal.ParticipantJoined{Participant: d} })
	p.log.Info("joined", "room", r.id, "name", c.Name, "host", p.info.Host)
	for _, t := range tracks {
		p.addSubscription(t)
	}
	p.negotiate() // the chat channel and the room's tracks
	return p, nil
}

// remove takes p out of its room, removing the room when it empties.
func (s *SFU) remove(p *participant) {
	p.detach()
	s.mu.Lock()
	defer s.mu.Unlock()
	_, empty := p.room.remove(p)
	if empty && s.rooms[p.room.id] == p.room {
		delete(s.rooms, p.room.id)
		s.m.rooms.Dec()
	}
	s.m.participants.Dec()
}

// leave takes p out of its room and tells the others.
func (s *SFU) leave(p *participant) {
	s.remove(p)
	p.room.announce(p, p, func(d signal.Participant) signal.Message { return signal.ParticipantLeft{Participant: d} })
	p.log.Info("left", "room", p.room.id)
	p.closeMedia()
}

// removeUser removes, for host, the user of participant id from the room:
// every connection of that user gets the error removed and is closed, and
// the user's joins are refused until CloseRoom. A host cannot be removed.
func (s *SFU) removeUser(host *participant, id string) error {
	r := host.room
	user, err := r.userOf(id)
	if err != nil {
		return err
	}
	s.mu.Lock()
	if s.rooms[r.id] != r { // the room is closing: everyone goes anyway
		s.mu.Unlock()
		return nil
	}
	if s.removed[r.id] == nil {
		s.removed[r.id] = map[string]bool{}
	}
	s.removed[r.id][user] = true
	s.mu.Unlock()
	// A join checks the list and enters the room under s.mu: every
	// connection of user that got past it is in the room now.
	ps := r.connectionsOf(user)
	host.log.Info("user removed by the host", "room", r.id, "removed_user", user, "connections", len(ps))
	for _, p := range ps {
		p.send(signal.Error{Code: signal.CodeRemoved, Message: ErrRemoved.Error()})
		p.conn.Close("removed")
	}
	return nil
}

// CloseRoom ends room id now: every participant is sent closing with
// reason and a deadline of now, and their sessions end; it returns when
// they have. It forgets the users a host removed from the room. It is
// otherwise a no-op for a room that does not exist. Joins to the room
// afterwards are up to Config.Keys: withdraw the room's key first.
func (s *SFU) CloseRoom(id, reason string) {
	s.mu.Lock()
	r := s.rooms[id]
	if r != nil {
		delete(s.rooms, id)
		s.m.rooms.Dec()
	}
	delete(s.warnings, id)
	delete(s.removed, id)
	s.mu.Unlock()
	if r == nil {
		return
	}
	ps := r.list()
	now := s.cfg.Now()
	for _, p := range ps {
		p.send(signal.Closing{Reason: reason, Deadline: now})
		p.conn.Close("room closed")
	}
	for _, p := range ps {
		<-p.left
	}
	s.log.Info("room closed", "room", id, "reason", reason, "participants", len(ps))
}

// WarnRoom tells every participant of room id, and everyone who joins it
// later, that it closes at closesAt (an ending message). The warning holds
// until CloseRoom, also for a room that has no participants now.
func (s *SFU) WarnRoom(id string, closesAt time.Time) {
	s.mu.Lock()
	s.warnings[id] = closesAt
	r := s.rooms[id]
	s.mu.Unlock()
	if r == nil {
		return
	}
	m := signal.NewEnding(closesAt, s.cfg.Now())
	for _, p := range r.warn(closesAt) {
		p.send(m)
	}
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
