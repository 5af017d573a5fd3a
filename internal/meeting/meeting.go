// Package meeting is the meeting service: every rule about meetings (who may
// see, edit and join one; time windows; limits) and the join itself (a join
// token for the room and ephemeral TURN credentials). It knows nothing of
// HTTP, SQL or Kubernetes: it depends on two ports it defines, Store (rows)
// and Rooms (where a meeting's media runs), which the callers implement.
package meeting

import (
	"context"
	"errors"
	"fmt"
	"time"

	"meeting.dev/meeting/internal/schedule"
)

// Errors of the service; the REST layer maps each to one status.
var (
	// ErrNotFound: no such meeting or user (404).
	ErrNotFound = errors.New("not found")
	// ErrForbidden: the caller may not do this to that meeting (403).
	ErrForbidden = errors.New("forbidden")
	// ErrConflict: the thing already exists (409).
	ErrConflict = errors.New("already exists")
	// ErrInvalid: the input breaks a rule (400); wrapped with the reason.
	ErrInvalid = errors.New("invalid")
	// ErrNotOpen: the meeting's media window has not opened yet (409).
	ErrNotOpen = errors.New("not open yet")
	// ErrEnded: the meeting is over (410).
	ErrEnded = errors.New("ended")
	// ErrMediaNotReady: the window is open but the media is still coming up (503, retry).
	ErrMediaNotReady = errors.New("media not ready")
	// ErrRateLimited: too many attempts; retry later (429).
	ErrRateLimited = errors.New("too many requests")
)

// Phase is the phase of a meeting as the API shows it.
type Phase string

// The phases. schedule decides all but Running, which also needs the media
// to be ready.
const (
	Scheduled Phase = Phase(schedule.Scheduled)
	Starting  Phase = Phase(schedule.Starting)
	Running   Phase = "Running"
	Ending    Phase = Phase(schedule.Ending)
	Ended     Phase = Phase(schedule.Ended)
	// Failed: the cluster's operator cannot run the media (only reported
	// by a cluster's Rooms).
	Failed Phase = "Failed"
)

// User is an account as the service sees it.
type User struct {
	ID        uint64
	Username  string
	CreatedAt time.Time
}

// Account is a user with the hash of its password, as the account
// handlers and the store exchange it.
type Account struct {
	ID       uint64
	Username string
	// PasswordHash is a bcrypt hash, or an md5 hex digest from the seed
	// until the first login re-hashes it.
	PasswordHash string
	// TokenGeneration is the generation of the account's valid API tokens;
	// a password change increments it.
	TokenGeneration uint64
	CreatedAt       time.Time
}

// User is the account without its password hash.
func (a Account) User() User { return User{ID: a.ID, Username: a.Username, CreatedAt: a.CreatedAt} }

// Error is a refusal whose message is meant for the client; errors.Is
// matches its Kind (one of the errors above).
type Error struct {
	Kind error
	Msg  string
}

func (e *Error) Error() string { return e.Msg }

// Unwrap returns the kind of the refusal.
func (e *Error) Unwrap() error { return e.Kind }

func refuse(kind error, format string, args ...any) error {
	return &Error{Kind: kind, Msg: fmt.Sprintf(format, args...)}
}

// NotOpenError refuses a join before the meeting's room opens; it is
// ErrNotOpen to errors.Is and tells when the meeting begins.
type NotOpenError struct {
	Identity string
	BeginAt  time.Time
	// OpensAt is BeginAt less the lead time: joins are admitted from then.
	OpensAt time.Time
}

func (e *NotOpenError) Error() string {
	return fmt.Sprintf("meeting %s has not opened yet: it begins at %s; joining is possible from %s",
		e.Identity, e.BeginAt.UTC().Format(time.RFC3339), e.OpensAt.UTC().Format(time.RFC3339))
}

// Is makes errors.Is(err, ErrNotOpen) true.
func (e *NotOpenError) Is(target error) bool { return target == ErrNotOpen }

// NotReadyError is ErrMediaNotReady with a hint of when to try again: a
// cluster's Rooms returns it while the Meeting is Scheduled or Starting
// there. The REST layer answers 503 with Retry-After.
type NotReadyError struct {
	Identity string
	// Reason says why, for the client (e.g. "the media is starting").
	Reason string
	// RetryAfter is how long to wait before trying again (at least 1s).
	RetryAfter time.Duration
}

func (e *NotReadyError) Error() string {
	return fmt.Sprintf("meeting %s: %s; try again in %s", e.Identity, e.Reason, e.RetryAfter.Round(time.Second))
}

// Is makes errors.Is(err, ErrMediaNotReady) true.
func (e *NotReadyError) Is(target error) bool { return target == ErrMediaNotReady }

// TooManyParticipantsError refuses a change that would leave a meeting
// with more invited participants (the creator not counted) than its
// MaxParticipants; it is ErrInvalid to errors.Is. The store returns it too,
// as it checks the count in the transaction that changes it.
type TooManyParticipantsError struct {
	Identity string
	// Invited is how many participants the meeting would have, the
	// creator not counted.
	Invited int
	// Max is the meeting's MaxParticipants.
	Max int
}

func (e *TooManyParticipantsError) Error() string {
	which := "the meeting"
	if e.Identity != "" {
		which = "meeting " + e.Identity
	}
	return fmt.Sprintf("%s would have %d invited participants (the creator not counted) but its max_participants is %d",
		which, e.Invited, e.Max)
}

// Is makes errors.Is(err, ErrInvalid) true.
func (e *TooManyParticipantsError) Is(target error) bool { return target == ErrInvalid }

// Meeting is a scheduled meeting.
type Meeting struct {
	ID       uint64
	Identity string
	Name     string
	BeginAt  time.Time
	EndAt    time.Time
	// MaxParticipants caps how many may be in the room at once and how
	// many participants (the creator not counted) may be invited; the
	// Meeting resource's spec.maxParticipants. 0 in a value that did not
	// come from the store means DefaultMaxParticipants.
	MaxParticipants int
	CreatorID       uint64
	CreatedAt       time.Time
	UpdatedAt       time.Time
}

// RoomLimit is the room's cap: MaxParticipants, or DefaultMaxParticipants
// when it is not set (the operator's rule for spec.maxParticipants).
func (m Meeting) RoomLimit() int {
	if m.MaxParticipants > 0 {
		return m.MaxParticipants
	}
	return DefaultMaxParticipants
}

// Window is the meeting's time window for the schedule rules.
func (m Meeting) Window() schedule.Window { return schedule.Window{BeginAt: m.BeginAt, EndAt: m.EndAt} }

// ListOptions selects a page of the meetings a user created or takes part in.
type ListOptions struct {
	// Keyword keeps meetings whose name contains it.
	Keyword string
	Offset  int
	Limit   int
}

// Store keeps meetings and their participants. It applies no user scoping:
// every permission is decided by the service. Its errors wrap ErrNotFound
// and ErrConflict where those apply.
type Store interface {
	// Meeting returns the meeting with that identity.
	Meeting(ctx context.Context, identity string) (Meeting, error)
	// IsParticipant reports whether userID was invited to the meeting (the
	// creator is not a participant row).
	IsParticipant(ctx context.Context, meetingID, userID uint64) (bool, error)
	// ListMeetings returns a page of the meetings userID created or takes
	// part in, newest beginning first, and how many there are in all.
	ListMeetings(ctx context.Context, userID uint64, opt ListOptions) ([]Meeting, int64, error)
	// MeetingsEndingAfter returns every meeting whose EndAt is after t
	// (standalone brings their rooms back after a restart).
	MeetingsEndingAfter(ctx context.Context, t time.Time) ([]Meeting, error)
	// CreateMeeting stores m (ID, CreatedAt and UpdatedAt filled in) and its
	// participants in one transaction.
	CreateMeeting(ctx context.Context, m *Meeting, participantIDs []uint64) error
	// UpdateMeeting locks the meeting, lets change edit it (an error from
	// change is returned as it is and nothing is written), and saves it. It
	// refuses, with a *TooManyParticipantsError, a MaxParticipants below the
	// number of participants.
	UpdateMeeting(ctx context.Context, identity string, change func(*Meeting) error) (Meeting, error)
	// DeleteMeeting removes the meeting and its participants.
	DeleteMeeting(ctx context.Context, identity string) error
	// Participants returns the users taking part, creator first.
	Participants(ctx context.Context, m Meeting) ([]User, error)
	// AddParticipants adds users (by id) to the meeting; present ones stay.
	// It refuses, with a *TooManyParticipantsError and nothing written, to
	// leave the meeting with more participants than its MaxParticipants.
	AddParticipants(ctx context.Context, meetingID uint64, userIDs []uint64) error
	// RemoveParticipant takes userID out; ErrNotFound when not a participant.
	RemoveParticipant(ctx context.Context, meetingID, userID uint64) error
	// UserIDs resolves usernames to ids; any unknown name is ErrNotFound.
	UserIDs(ctx context.Context, usernames []string) ([]uint64, error)
}

// Room is what a client needs of a meeting's media to join it.
type Room struct {
	// SignalURL is the WebSocket signalling URL: absolute ("wss://…"), or a
	// path ("/ws") served on the API's own listener, which the service makes
	// absolute with the scheme and host the client reached the API by.
	SignalURL string
	// TokenKey signs the room's join tokens.
	TokenKey []byte
	// TURNSecret is the TURN REST API secret of the room's TURN server.
	TURNSecret []byte
	// TURNURIs are the room's TURN server URIs ("turn:host:port?transport=udp").
	TURNURIs []string
}

// RoomStatus is the state of a meeting's media.
type RoomStatus struct {
	// Ready: the media runs and accepts joins.
	Ready bool
	// Online is the number of participants connected now.
	Online int
	// Phase, when not empty, is the phase the media's own scheduler reports
	// (a Meeting's status.phase in a cluster); the API shows it in place of
	// the phase it computes. In-process rooms leave it empty.
	Phase Phase
}

// Rooms is where meetings' media runs: in-process (standalone, package
// local) or in the cluster (package sync). The service tells it of every
// change to a meeting's window; Rooms opens and closes media by the same
// schedule rules.
type Rooms interface {
	// Schedule plans (or re-plans) the media of m after a create or an edit.
	Schedule(ctx context.Context, m Meeting) error
	// Remove closes the meeting's media at once, telling every participant
	// reason (the meeting was deleted).
	Remove(ctx context.Context, identity, reason string) error
	// Room returns the joinable media of a meeting; an error wrapping
	// ErrMediaNotReady when it is not (yet) up.
	Room(ctx context.Context, identity string) (Room, error)
	// Status returns the state of the meeting's media (zero when none).
	Status(ctx context.Context, identity string) RoomStatus
}
