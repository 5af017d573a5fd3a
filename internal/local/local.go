// Package local is standalone mode's Rooms: the media of every meeting runs
// in this process, in one SFU and one TURN server shared by all rooms. Each
// room has its own join-token key, which exists only while the room is open;
// a scheduler opens a room at beginAt − lead time, warns its participants at
// endAt and closes it at endAt + grace, by the same rules as the operator
// (package schedule).
package local

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/utils/clock"

	"meeting.dev/meeting/internal/meeting"
	"meeting.dev/meeting/internal/schedule"
	"meeting.dev/meeting/media/sfu"
	"meeting.dev/meeting/media/turn"
)

// SignalPath is where the API's listener serves the SFU's signalling.
const SignalPath = "/ws"

// Reasons told to the participants of a room that closes.
const (
	ReasonEnded       = "the meeting has ended"
	ReasonRescheduled = "the meeting was moved to a later time"
	ReasonShutdown    = "the server is shutting down"
)

// Config is the in-process media of standalone mode. The sockets belong to
// the caller until New succeeds; then Close closes them.
type Config struct {
	// ICEConn is the SFU's one UDP socket for all ICE traffic.
	ICEConn net.PacketConn
	// TURNConns and TURNListeners are TURN's UDP sockets and TCP listeners.
	TURNConns     []net.PacketConn
	TURNListeners []net.Listener
	// PublicIP is announced in ICE candidates, as TURN's relay address and
	// in TURN URIs.
	PublicIP netip.Addr
	// Policy is the lead time and grace of every room.
	Policy schedule.Policy
	// AllowedOrigins are Origins accepted on signalling besides the page's own.
	AllowedOrigins []string
	// MaxParticipants caps the SFU's rooms that no scheduled meeting
	// limits (none admits anyone: their key lookup fails); SFU default when
	// 0. A meeting's room holds its meeting's MaxParticipants, as the
	// operator gives `meeting sfu --max-participants` for a Meeting.
	MaxParticipants int
	// DrainTimeout is how long Shutdown lets participants leave.
	DrainTimeout time.Duration
	// Registerer receives the SFU's and TURN's metrics (nil: none).
	Registerer prometheus.Registerer
	Log        *slog.Logger
	// Clock drives the schedule (default: the real clock).
	Clock clock.WithDelayedExecution
}

// Rooms runs meetings' media in this process; it implements meeting.Rooms.
type Rooms struct {
	cfg        Config
	log        *slog.Logger
	sfu        *sfu.SFU
	turn       *turn.Server
	turnSecret []byte
	turnURIs   []string

	mu     sync.Mutex
	rooms  map[string]*room
	closed bool
}

var _ meeting.Rooms = (*Rooms)(nil)

// room is one meeting's schedule and, while open, its join-token key.
type room struct {
	window schedule.Window
	// limit is the meeting's MaxParticipants (meeting.Meeting.RoomLimit).
	limit int
	key   []byte // nil while closed
	timer clock.Timer
	// warned is the closing time participants were last warned of.
	warned time.Time
}

// New starts the SFU and TURN server on cfg's sockets.
func New(cfg Config) (*Rooms, error) {
	if cfg.ICEConn == nil || len(cfg.TURNConns)+len(cfg.TURNListeners) == 0 {
		return nil, errors.New("local: an ICE socket and TURN sockets are required")
	}
	if !cfg.PublicIP.IsValid() {
		return nil, errors.New("local: a public IP is required")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	r := &Rooms{cfg: cfg, log: cfg.Log, rooms: map[string]*room{}, turnSecret: randomKey()}

	iceAddr, ok := cfg.ICEConn.LocalAddr().(*net.UDPAddr)
	if !ok {
		return nil, fmt.Errorf("local: ICE socket is %T, want UDP", cfg.ICEConn.LocalAddr())
	}
	// TURN may relay to the SFU's own ICE address and nothing else private.
	allow := []netip.AddrPort{netip.AddrPortFrom(cfg.PublicIP, uint16(iceAddr.Port))}
	if ip, ok := netip.AddrFromSlice(iceAddr.IP); ok && !ip.Unmap().IsUnspecified() && ip.Unmap() != cfg.PublicIP {
		allow = append(allow, netip.AddrPortFrom(ip.Unmap(), uint16(iceAddr.Port)))
	}
	tcfg := turn.DefaultConfig()
	tcfg.PacketConns, tcfg.Listeners = cfg.TURNConns, cfg.TURNListeners
	tcfg.Secret = r.turnSecret
	tcfg.RelayIP = cfg.PublicIP
	if cfg.PublicIP.IsLoopback() {
		tcfg.RelayBindIP = cfg.PublicIP
	}
	tcfg.AllowPeerAddrs = allow
	tcfg.Logger = cfg.Log.With("part", "turn")
	tcfg.Registerer = cfg.Registerer
	var err error
	if r.turn, err = turn.New(tcfg); err != nil {
		return nil, fmt.Errorf("local: %w", err)
	}
	r.turnURIs = turnURIs(cfg.PublicIP, r.turn.UDPAddr(), r.turn.TCPAddr())

	scfg := sfu.Config{
		Keys:            r.key,
		RoomLimit:       r.limit,
		MaxParticipants: cfg.MaxParticipants,
		DrainTimeout:    cfg.DrainTimeout,
		AllowedOrigins:  cfg.AllowedOrigins,
		PublicIPs:       []string{cfg.PublicIP.String()},
		Logger:          cfg.Log.With("part", "sfu"),
		Registerer:      cfg.Registerer,
		Now:             cfg.Clock.Now,
	}
	if r.sfu, err = sfu.New(scfg, cfg.ICEConn); err != nil {
		_ = r.turn.Close()
		return nil, fmt.Errorf("local: %w", err)
	}
	return r, nil
}

// turnURIs names TURN over UDP and TCP at the public IP and the ports of
// the sockets (nil when that transport is not served).
func turnURIs(ip netip.Addr, udp, tcp net.Addr) []string {
	var uris []string
	for _, a := range []struct {
		addr      net.Addr
		transport string
	}{{udp, "udp"}, {tcp, "tcp"}} {
		if a.addr == nil {
			continue
		}
		_, port, err := net.SplitHostPort(a.addr.String())
		if err != nil {
			continue
		}
		uris = append(uris, "turn:"+net.JoinHostPort(ip.String(), port)+"?transport="+a.transport)
	}
	return uris
}

func randomKey() []byte {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return b
}

// Handler serves signalling; mount it at SignalPath.
func (r *Rooms) Handler() http.Handler { return r.sfu.Handler() }

// Ready reports whether the media accepts joins (false while draining).
func (r *Rooms) Ready() bool { return r.sfu.Ready() }

// key is the SFU's per-room key lookup: only open rooms admit anyone.
func (r *Rooms) key(identity string) ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if rm := r.rooms[identity]; rm != nil && rm.key != nil {
		return rm.key, nil
	}
	return nil, fmt.Errorf("meeting %s is not open", identity)
}

// limit is the SFU's per-room cap: the meeting's MaxParticipants, 0 for
// a room no meeting is scheduled in.
func (r *Rooms) limit(identity string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if rm := r.rooms[identity]; rm != nil {
		return rm.limit
	}
	return 0
}

// Schedule plans m's room: opened, warned and closed at the times the
// schedule gives, re-planned by every call. The room holds at most
// m.MaxParticipants at once (the default when 0); a lower limit applies to
// the next join, nobody in the room is sent away.
func (r *Rooms) Schedule(_ context.Context, m meeting.Meeting) error {
	if _, err := schedule.At(m.Window(), r.cfg.Clock.Now(), r.cfg.Policy); err != nil {
		return fmt.Errorf("schedule meeting %s: %w", m.Identity, err)
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return errors.New("local: rooms are shut down")
	}
	rm := r.rooms[m.Identity]
	if rm == nil {
		rm = &room{}
		r.rooms[m.Identity] = rm
	}
	rm.window = m.Window()
	rm.limit = m.RoomLimit()
	act := r.stepLocked(m.Identity, rm)
	r.mu.Unlock()
	act()
	return nil
}

// step re-plans a room when its timer fires.
func (r *Rooms) step(identity string) {
	r.mu.Lock()
	rm := r.rooms[identity]
	if rm == nil || r.closed {
		r.mu.Unlock()
		return
	}
	act := r.stepLocked(identity, rm)
	r.mu.Unlock()
	act()
}

// stepLocked brings rm to the state the schedule wants now, sets its next
// timer, and returns what must be told to the SFU, to run without r.mu
// (the SFU calls back into key).
func (r *Rooms) stepLocked(identity string, rm *room) (act func()) {
	act = func() {}
	if rm.timer != nil {
		rm.timer.Stop()
		rm.timer = nil
	}
	now := r.cfg.Clock.Now()
	plan, err := schedule.At(rm.window, now, r.cfg.Policy)
	if err != nil { // Schedule checked the window; keep the room as it is
		r.log.Error("cannot plan room", "meeting", identity, "err", err)
		return act
	}
	switch plan.Phase {
	case schedule.Scheduled:
		if rm.key != nil {
			rm.key, rm.warned = nil, time.Time{}
			r.log.Info("room closed", "meeting", identity, "reason", ReasonRescheduled)
			act = func() { r.sfu.CloseRoom(identity, ReasonRescheduled) }
		}
	case schedule.Starting, schedule.Ending:
		if rm.key == nil {
			rm.key = randomKey()
			r.log.Info("room open", "meeting", identity, "begin_at", rm.window.BeginAt, "end_at", rm.window.EndAt)
		}
		closesAt := rm.window.EndAt.Add(r.cfg.Policy.Grace)
		if plan.Phase == schedule.Ending && !rm.warned.Equal(closesAt) {
			rm.warned = closesAt
			r.log.Info("room ending", "meeting", identity, "closes_at", closesAt)
			act = func() { r.sfu.WarnRoom(identity, closesAt) }
		}
	case schedule.Ended:
		delete(r.rooms, identity)
		if rm.key != nil {
			r.log.Info("room closed", "meeting", identity, "reason", ReasonEnded)
			return func() { r.sfu.CloseRoom(identity, ReasonEnded) }
		}
		return act
	}
	// A goroutine of its own: a fake clock runs the function under its lock,
	// which stepLocked's Stop would take again.
	rm.timer = r.cfg.Clock.AfterFunc(plan.Next.Sub(now), func() { go r.step(identity) })
	return act
}

// Remove closes a meeting's room at once, telling its participants reason.
func (r *Rooms) Remove(_ context.Context, identity, reason string) error {
	r.mu.Lock()
	rm := r.rooms[identity]
	delete(r.rooms, identity)
	if rm != nil && rm.timer != nil {
		rm.timer.Stop()
	}
	r.mu.Unlock()
	if rm != nil && rm.key != nil {
		r.log.Info("room closed", "meeting", identity, "reason", reason)
		r.sfu.CloseRoom(identity, reason)
	}
	return nil
}

// Room returns what a client needs to join an open room.
func (r *Rooms) Room(_ context.Context, identity string) (meeting.Room, error) {
	key, err := r.key(identity)
	if err != nil {
		return meeting.Room{}, fmt.Errorf("%w: %w", meeting.ErrMediaNotReady, err)
	}
	return meeting.Room{SignalURL: SignalPath, TokenKey: key, TURNSecret: r.turnSecret, TURNURIs: r.turnURIs}, nil
}

// Status says whether the room is open and how many are in it.
func (r *Rooms) Status(_ context.Context, identity string) meeting.RoomStatus {
	_, err := r.key(identity)
	if err != nil {
		return meeting.RoomStatus{}
	}
	return meeting.RoomStatus{Ready: true, Online: r.sfu.Participants(identity)}
}

// Open reports how many rooms are open (tests, logs).
func (r *Rooms) Open() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, rm := range r.rooms {
		if rm.key != nil {
			n++
		}
	}
	return n
}

// Shutdown stops the schedule, tells every participant the server is
// closing, waits up to the drain timeout (or ctx) for them to leave, and
// closes the SFU and TURN with their sockets.
func (r *Rooms) Shutdown(ctx context.Context) error {
	r.mu.Lock()
	r.closed = true
	for _, rm := range r.rooms {
		if rm.timer != nil {
			rm.timer.Stop()
		}
	}
	r.mu.Unlock()
	r.sfu.Shutdown(ctx)
	err := r.turn.Close()
	if cerr := r.cfg.ICEConn.Close(); cerr != nil && !errors.Is(cerr, net.ErrClosed) {
		err = errors.Join(err, cerr)
	}
	if err != nil {
		return fmt.Errorf("local: shut down media: %w", err)
	}
	return nil
}

// TURNAddrs returns the addresses TURN listens on (UDP, TCP; nil when absent).
func (r *Rooms) TURNAddrs() (udp, tcp net.Addr) { return r.turn.UDPAddr(), r.turn.TCPAddr() }
