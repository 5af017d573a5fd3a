package meeting

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"meeting.dev/meeting/internal/schedule"
	"meeting.dev/meeting/media/token"
)

// Limits the service enforces.
const (
	// MaxNameRunes is the longest a meeting's name may be, in characters
	// (the Meeting resource's spec.title).
	MaxNameRunes = 200
	// MaxInvites is how many users one request may invite (the Meeting
	// resource's spec.participants holds at most as many).
	MaxInvites = 1000
	// DefaultMaxParticipants is a new meeting's MaxParticipants when none
	// is given (spec.maxParticipants' default).
	DefaultMaxParticipants = 50
	// MaxParticipantsLimit is the largest MaxParticipants a meeting may
	// have (spec.maxParticipants' maximum).
	MaxParticipantsLimit = 1000
	// MaxDuration is the longest a meeting may last.
	MaxDuration = 24 * time.Hour
	// MaxPageSize is the largest page List returns.
	MaxPageSize = 100
	// MaxTURNCredentialTTL caps the lifetime of TURN credentials.
	MaxTURNCredentialTTL = 24 * time.Hour
	// DefaultJoinTokenTTL is how long a join token admits to its room.
	DefaultJoinTokenTTL = 2 * time.Minute
)

// Config is what New needs.
type Config struct {
	Store Store
	Rooms Rooms
	// Policy is when the media runs around a meeting's window; the same as
	// the operator's (or standalone's) --lead-time and --end-grace.
	Policy schedule.Policy
	// JoinTokenTTL is the lifetime of join tokens; DefaultJoinTokenTTL when zero.
	JoinTokenTTL time.Duration
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Log receives the failures that are not returned (a Rooms error after
	// the row was written); discarded when nil.
	Log *slog.Logger
}

// Service is the meeting service: every rule about meetings, applied
// before the Store is written and the Rooms told.
type Service struct {
	store  Store
	rooms  Rooms
	policy schedule.Policy
	ttl    time.Duration
	now    func() time.Time
	log    *slog.Logger
}

// New returns the service of cfg.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil || cfg.Rooms == nil {
		return nil, errors.New("meeting: Store and Rooms are required")
	}
	if cfg.Policy.LeadTime < 0 || cfg.Policy.Grace < 0 {
		return nil, fmt.Errorf("meeting: %w (lead %s, grace %s)", schedule.ErrInvalidPolicy, cfg.Policy.LeadTime, cfg.Policy.Grace)
	}
	if cfg.JoinTokenTTL < 0 {
		return nil, fmt.Errorf("meeting: join token TTL %s is negative", cfg.JoinTokenTTL)
	}
	if cfg.JoinTokenTTL == 0 {
		cfg.JoinTokenTTL = DefaultJoinTokenTTL
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Service{store: cfg.Store, rooms: cfg.Rooms, policy: cfg.Policy, ttl: cfg.JoinTokenTTL,
		now: cfg.Now, log: cfg.Log}, nil
}

// View is a meeting with the phase it is in now.
type View struct {
	Meeting
	Phase Phase
	// ParticipantsOnline is how many participants are connected to the
	// room; counted while Running or Ending, 0 in every other phase.
	ParticipantsOnline int
}

// Detail is a meeting with its phase and who takes part, creator first.
type Detail struct {
	View
	Participants []User
}

// NewMeeting is what Create needs.
type NewMeeting struct {
	// Identity, when not empty, is the meeting's identity (lower-cased,
	// then checked by CheckIdentity); empty: a random UUID.
	Identity string
	Name     string
	BeginAt  time.Time
	EndAt    time.Time
	// MaxParticipants caps the room and the invitations (1 to
	// MaxParticipantsLimit); 0 means DefaultMaxParticipants.
	MaxParticipants int
	// Participants are usernames to invite besides the creator; at most
	// MaxParticipants of them.
	Participants []string
}

// Change is an edit: nil fields stay as they are.
type Change struct {
	Name    *string
	BeginAt *time.Time
	EndAt   *time.Time
	// MaxParticipants may not go below the number of participants.
	MaxParticipants *int
}

// ICEServer is one entry of RTCPeerConnection's iceServers.
type ICEServer struct {
	URLs       []string
	Username   string
	Credential string
}

// Admission is what a participant needs to join a meeting's room.
type Admission struct {
	Meeting Meeting
	// Phase is Running, Starting (the media answered but does not yet
	// report ready) or Ending (the grace period after EndAt).
	Phase Phase
	// SignalURL is the absolute ws:// or wss:// signalling URL.
	SignalURL string
	// Token admits to the room until ExpiresAt.
	Token     string
	ExpiresAt time.Time
	// ICEServers carry TURN credentials valid until the media is removed
	// (EndAt + grace) but never longer than MaxTURNCredentialTTL; empty
	// when the room has no TURN server.
	ICEServers []ICEServer
}

// CheckName returns the name with surrounding space trimmed, or why it is
// not a meeting's name.
func CheckName(name string) (string, error) {
	name = strings.TrimSpace(name)
	switch {
	case name == "":
		return "", refuse(ErrInvalid, "name must not be empty")
	case !utf8.ValidString(name) || strings.ContainsRune(name, utf8.RuneError):
		// U+FFFD is what a decoder makes of invalid UTF-8 or a lone
		// surrogate escape: refuse it rather than store the damage.
		return "", refuse(ErrInvalid, "name must be valid UTF-8")
	case utf8.RuneCountInString(name) > MaxNameRunes:
		return "", refuse(ErrInvalid, "name has %d characters; at most %d", utf8.RuneCountInString(name), MaxNameRunes)
	case strings.IndexFunc(name, unicode.IsControl) >= 0:
		return "", refuse(ErrInvalid, "name must not contain control characters")
	case strings.IndexFunc(name, isFormat) >= 0:
		return "", refuse(ErrInvalid, "name must not contain invisible format characters (bidirectional controls, zero-width characters)")
	}
	return name, nil
}

// isFormat reports Unicode format characters (category Cf): bidirectional
// overrides and isolates, zero-width spaces and joiners, the byte order mark.
func isFormat(r rune) bool { return unicode.Is(unicode.Cf, r) }

// CheckMaxParticipants reports why n is not a meeting's MaxParticipants:
// 1 to MaxParticipantsLimit.
func CheckMaxParticipants(n int) error {
	if n < 1 || n > MaxParticipantsLimit {
		return refuse(ErrInvalid, "max_participants is %d; it must be from 1 to %d", n, MaxParticipantsLimit)
	}
	return nil
}

// CheckWindow checks a meeting's times as they will be stored: the end
// after the beginning, at most MaxDuration apart, and not in the past.
func CheckWindow(begin, end, now time.Time) error {
	switch {
	case !end.After(begin):
		return refuse(ErrInvalid, "end_at must be after begin_at")
	case end.Sub(begin) > MaxDuration:
		return refuse(ErrInvalid, "a meeting lasts at most %s", formatDuration(MaxDuration))
	case !end.After(now):
		return refuse(ErrInvalid, "end_at is in the past")
	}
	return nil
}

func formatDuration(d time.Duration) string {
	if d%time.Hour == 0 {
		return strconv.FormatInt(int64(d/time.Hour), 10) + "h"
	}
	return d.String()
}

// List returns a page of the meetings caller created or takes part in,
// newest beginning first, and how many there are in all.
func (s *Service) List(ctx context.Context, caller User, opt ListOptions) ([]View, int64, error) {
	if opt.Limit <= 0 || opt.Limit > MaxPageSize {
		opt.Limit = MaxPageSize
	}
	if opt.Offset < 0 {
		opt.Offset = 0
	}
	list, n, err := s.store.ListMeetings(ctx, caller.ID, opt)
	if err != nil {
		return nil, 0, err
	}
	now := s.now()
	out := make([]View, len(list))
	for i, m := range list {
		out[i] = s.view(ctx, m, now)
	}
	return out, n, nil
}

// Get returns a meeting caller may see (creator or participant) with its
// participants.
func (s *Service) Get(ctx context.Context, caller User, identity string) (Detail, error) {
	m, err := s.visible(ctx, caller, identity)
	if err != nil {
		return Detail{}, err
	}
	users, err := s.store.Participants(ctx, m)
	if err != nil {
		return Detail{}, err
	}
	return Detail{View: s.view(ctx, m, s.now()), Participants: users}, nil
}

// Create schedules a meeting by caller with the invited participants.
func (s *Service) Create(ctx context.Context, caller User, in NewMeeting) (View, error) {
	name, err := CheckName(in.Name)
	if err != nil {
		return View{}, err
	}
	now := s.now()
	if err := CheckWindow(in.BeginAt, in.EndAt, now); err != nil {
		return View{}, err
	}
	limit := in.MaxParticipants
	if limit == 0 {
		limit = DefaultMaxParticipants
	}
	if err := CheckMaxParticipants(limit); err != nil {
		return View{}, err
	}
	identity := strings.ToLower(in.Identity)
	if identity != "" {
		if err := CheckIdentity(identity); err != nil {
			return View{}, err
		}
	}
	names := dedupe(in.Participants)
	if len(names) > MaxInvites {
		return View{}, refuse(ErrInvalid, "at most %d participants per request", MaxInvites)
	}
	ids, err := s.store.UserIDs(ctx, names)
	if err != nil {
		return View{}, err
	}
	if n := invited(ids, caller.ID); n > limit {
		return View{}, &TooManyParticipantsError{Identity: identity, Invited: n, Max: limit}
	}
	if identity == "" {
		if identity, err = newIdentity(); err != nil {
			return View{}, err
		}
	}
	m := Meeting{Identity: identity, Name: name, BeginAt: in.BeginAt.UTC(), EndAt: in.EndAt.UTC(),
		MaxParticipants: limit, CreatorID: caller.ID}
	if err := s.store.CreateMeeting(ctx, &m, ids); err != nil {
		return View{}, err
	}
	s.schedule(ctx, m)
	return s.view(ctx, m, now), nil
}

// Edit changes a meeting caller created; the window rules apply when its
// times change. The media is re-planned.
func (s *Service) Edit(ctx context.Context, caller User, identity string, ch Change) (View, error) {
	if ch.Name == nil && ch.BeginAt == nil && ch.EndAt == nil && ch.MaxParticipants == nil {
		return View{}, refuse(ErrInvalid, "nothing to change: send name, begin_at, end_at or max_participants")
	}
	if ch.MaxParticipants != nil {
		if err := CheckMaxParticipants(*ch.MaxParticipants); err != nil {
			return View{}, err
		}
	}
	var name string
	if ch.Name != nil {
		n, err := CheckName(*ch.Name)
		if err != nil {
			return View{}, err
		}
		name = n
	}
	now := s.now()
	m, err := s.store.UpdateMeeting(ctx, identity, func(m *Meeting) error {
		if m.CreatorID != caller.ID {
			return notYours(identity)
		}
		if ch.Name != nil {
			m.Name = name
		}
		if ch.MaxParticipants != nil {
			m.MaxParticipants = *ch.MaxParticipants // the store refuses fewer than are invited
		}
		if ch.BeginAt == nil && ch.EndAt == nil {
			return nil
		}
		if ch.BeginAt != nil {
			m.BeginAt = ch.BeginAt.UTC()
		}
		if ch.EndAt != nil {
			m.EndAt = ch.EndAt.UTC()
		}
		return CheckWindow(m.BeginAt, m.EndAt, now)
	})
	if err != nil {
		return View{}, err
	}
	s.schedule(ctx, m)
	return s.view(ctx, m, now), nil
}

// Delete removes a meeting caller created and closes its media.
func (s *Service) Delete(ctx context.Context, caller User, identity string) error {
	if _, err := s.owned(ctx, caller, identity); err != nil {
		return err
	}
	if err := s.store.DeleteMeeting(ctx, identity); err != nil {
		return err
	}
	if err := s.rooms.Remove(ctx, identity, "the meeting was deleted"); err != nil {
		s.log.Error("meeting deleted but its media not removed", "meeting", identity, "err", err)
	}
	return nil
}

// Members returns who takes part in a meeting caller may see, creator first.
func (s *Service) Members(ctx context.Context, caller User, identity string) ([]User, error) {
	m, err := s.visible(ctx, caller, identity)
	if err != nil {
		return nil, err
	}
	return s.store.Participants(ctx, m)
}

// AddMembers invites users (by name) to a meeting caller created and
// returns who takes part now. An unknown name adds nobody, and so does an
// invitation that would leave more participants than MaxParticipants.
func (s *Service) AddMembers(ctx context.Context, caller User, identity string, usernames []string) ([]User, error) {
	names := dedupe(usernames)
	if len(names) == 0 {
		return nil, refuse(ErrInvalid, "usernames must name at least one user")
	}
	if len(names) > MaxInvites {
		return nil, refuse(ErrInvalid, "at most %d participants per request", MaxInvites)
	}
	m, err := s.owned(ctx, caller, identity)
	if err != nil {
		return nil, err
	}
	ids, err := s.store.UserIDs(ctx, names)
	if err != nil {
		return nil, err
	}
	if err := s.store.AddParticipants(ctx, m.ID, ids); err != nil {
		return nil, err
	}
	return s.store.Participants(ctx, m)
}

// RemoveMember takes a participant out of a meeting caller created; the
// creator cannot be removed. A removed user's next join is refused.
func (s *Service) RemoveMember(ctx context.Context, caller User, identity, username string) error {
	m, err := s.owned(ctx, caller, identity)
	if err != nil {
		return err
	}
	ids, err := s.store.UserIDs(ctx, []string{username})
	if err != nil {
		return err
	}
	if ids[0] == m.CreatorID {
		return refuse(ErrInvalid, "the creator of meeting %s cannot be removed from it; delete the meeting instead", identity)
	}
	err = s.store.RemoveParticipant(ctx, m.ID, ids[0])
	if errors.Is(err, ErrNotFound) {
		return refuse(ErrNotFound, "%s does not take part in meeting %s", username, identity)
	}
	return err
}

// Join admits caller (creator or participant) to a meeting's room while it
// is Starting, Running or Ending: Ending, the grace period after EndAt,
// still admits so that a participant whose connection drops can come back
// while everyone is warned that the meeting is over. Before the room opens
// the error is a *NotOpenError (ErrNotOpen); after the grace, ErrEnded; an
// error wrapping ErrMediaNotReady while the media comes up.
//
// api is the URL the client reached the API by (scheme http or https and
// host); a SignalURL that Rooms gives as a path is made absolute on it,
// http becoming ws and https wss. A user may join any number of times (two
// devices): each join gets its own token and credentials. The creator's
// token carries the role token.RoleHost.
func (s *Service) Join(ctx context.Context, caller User, identity string, api *url.URL) (Admission, error) {
	m, err := s.visible(ctx, caller, identity)
	if err != nil {
		return Admission{}, err
	}
	now := s.now()
	plan, err := schedule.At(m.Window(), now, s.policy)
	if err != nil {
		return Admission{}, fmt.Errorf("meeting %s: %w", identity, err)
	}
	switch plan.Phase {
	case schedule.Scheduled:
		return Admission{}, &NotOpenError{Identity: identity, BeginAt: m.BeginAt, OpensAt: plan.StartAt}
	case schedule.Ended:
		return Admission{}, refuse(ErrEnded, "meeting %s ended at %s", identity, m.EndAt.UTC().Format(time.RFC3339))
	}
	room, err := s.rooms.Room(ctx, identity)
	if err != nil {
		return Admission{}, fmt.Errorf("meeting %s: %w", identity, err)
	}
	signal, err := absoluteSignalURL(room.SignalURL, api)
	if err != nil {
		return Admission{}, fmt.Errorf("meeting %s: %w", identity, err)
	}
	user := strconv.FormatUint(caller.ID, 10)
	claims := token.Claims{Room: identity, User: user, Name: caller.Username, IssuedAt: now}
	if caller.ID == m.CreatorID {
		claims.Role = token.RoleHost // the creator hosts: may mute and remove the others
	}
	tok, err := token.Mint(room.TokenKey, claims, s.ttl)
	if err != nil {
		return Admission{}, fmt.Errorf("meeting %s: join token: %w", identity, err)
	}
	phase := Phase(plan.Phase)
	if phase == Starting {
		phase = Running // the room answered: its media is up
	}
	a := Admission{Meeting: m, Phase: phase, SignalURL: signal, Token: tok, ExpiresAt: now.Add(s.ttl),
		ICEServers: []ICEServer{}}
	if len(room.TURNURIs) > 0 {
		ttl := min(m.EndAt.Add(s.policy.Grace).Sub(now), MaxTURNCredentialTTL)
		username, password := token.TURNCredentials(room.TURNSecret, user, ttl, now)
		a.ICEServers = append(a.ICEServers, ICEServer{URLs: append([]string(nil), room.TURNURIs...),
			Username: username, Credential: password})
	}
	return a, nil
}

// absoluteSignalURL returns signal as it is when absolute, else resolved
// against api with its scheme turned into the WebSocket one.
func absoluteSignalURL(signal string, api *url.URL) (string, error) {
	u, err := url.Parse(signal)
	if err != nil {
		return "", fmt.Errorf("signal URL %q: %w", signal, err)
	}
	if u.IsAbs() {
		return signal, nil
	}
	if api == nil || api.Host == "" {
		return "", fmt.Errorf("signal URL %q is a path and the API's host is unknown", signal)
	}
	base := url.URL{Scheme: "ws", Host: api.Host, Path: "/"}
	if api.Scheme == "https" || api.Scheme == "wss" {
		base.Scheme = "wss"
	}
	return base.ResolveReference(u).String(), nil
}

// visible loads a meeting caller may see: its creator or a participant.
func (s *Service) visible(ctx context.Context, caller User, identity string) (Meeting, error) {
	m, err := s.store.Meeting(ctx, identity)
	if err != nil {
		return Meeting{}, err
	}
	if m.CreatorID == caller.ID {
		return m, nil
	}
	ok, err := s.store.IsParticipant(ctx, m.ID, caller.ID)
	if err != nil {
		return Meeting{}, err
	}
	if !ok {
		return Meeting{}, refuse(ErrForbidden, "meeting %s: you neither created it nor take part in it", identity)
	}
	return m, nil
}

// owned loads a meeting caller created.
func (s *Service) owned(ctx context.Context, caller User, identity string) (Meeting, error) {
	m, err := s.store.Meeting(ctx, identity)
	if err != nil {
		return Meeting{}, err
	}
	if m.CreatorID != caller.ID {
		return Meeting{}, notYours(identity)
	}
	return m, nil
}

func notYours(identity string) error {
	return refuse(ErrForbidden, "meeting %s is not yours: only its creator may change it", identity)
}

// view adds the phase to m: the clock's, with Starting shown as Running
// once Rooms reports the media ready.
func (s *Service) view(ctx context.Context, m Meeting, now time.Time) View {
	v := View{Meeting: m}
	plan, err := schedule.At(m.Window(), now, s.policy)
	if err != nil {
		// Only a row written around the service (end not after begin)
		// gets here: no media is ever planned for it.
		s.log.Warn("meeting has an invalid window", "meeting", m.Identity, "err", err)
		v.Phase = Ended
		return v
	}
	v.Phase = Phase(plan.Phase)
	st := s.rooms.Status(ctx, m.Identity)
	switch {
	case st.Phase != "":
		v.Phase = st.Phase // where media runs in a cluster, its phase is the cluster's
	case v.Phase == Starting && st.Ready:
		v.Phase = Running
	}
	if v.Phase == Running || v.Phase == Ending {
		v.ParticipantsOnline = st.Online
	}
	return v
}

// ScheduleAll tells Rooms of every meeting whose media is running or still
// to come (its end plus grace is after now), and returns how many. A process
// that runs the media calls it on start: the rooms whose window is open come
// back, and the others are planned.
func (s *Service) ScheduleAll(ctx context.Context) (int, error) {
	list, err := s.store.MeetingsEndingAfter(ctx, s.now().Add(-s.policy.Grace))
	if err != nil {
		return 0, fmt.Errorf("schedule meetings: %w", err)
	}
	for _, m := range list {
		if err := s.rooms.Schedule(ctx, m); err != nil {
			return 0, fmt.Errorf("schedule meeting %s: %w", m.Identity, err)
		}
	}
	return len(list), nil
}

// schedule tells Rooms of a written meeting; the row is the truth, so a
// failure is logged and the rooms converge later.
func (s *Service) schedule(ctx context.Context, m Meeting) {
	if err := s.rooms.Schedule(ctx, m); err != nil {
		s.log.Error("meeting saved but its media not scheduled", "meeting", m.Identity, "err", err)
	}
}

// invited counts the distinct ids other than the creator's.
func invited(ids []uint64, creatorID uint64) int {
	seen := make(map[uint64]bool, len(ids))
	for _, id := range ids {
		if id != creatorID {
			seen[id] = true
		}
	}
	return len(seen)
}

// dedupe drops repeated usernames (case-insensitively), keeping the order.
func dedupe(names []string) []string {
	seen := make(map[string]bool, len(names))
	var out []string
	for _, n := range names {
		k := strings.ToLower(n)
		if !seen[k] {
			seen[k] = true
			out = append(out, n)
		}
	}
	return out
}
