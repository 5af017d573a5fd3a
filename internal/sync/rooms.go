package sync

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rtcv1alpha1 "meeting.dev/meeting/api/v1alpha1"
	"meeting.dev/meeting/internal/meeting"
	"meeting.dev/meeting/internal/schedule"
)

// SignalPathPrefix starts the path of every room's proxied signalling
// WebSocket on the API's own origin: SignalPath(identity).
const SignalPathPrefix = "/rooms/"

// SignalPath is the path, on the API's origin, where the Proxy serves the
// signalling WebSocket of the room with that identity.
func SignalPath(identity string) string {
	return SignalPathPrefix + url.PathEscape(identity) + "/ws"
}

// identityOfPath is the identity in a SignalPath, or false.
func identityOfPath(path string) (string, bool) {
	rest, ok := strings.CutPrefix(path, SignalPathPrefix)
	if !ok {
		return "", false
	}
	id, ok := strings.CutSuffix(rest, "/ws")
	if !ok || id == "" || strings.Contains(id, "/") {
		return "", false
	}
	id, err := url.PathUnescape(id)
	return id, err == nil && id != ""
}

// startingRetry is the Retry-After of a join while the media comes up.
const startingRetry = 3 * time.Second

// RoomsConfig configures the cluster's Rooms.
type RoomsConfig struct {
	// Namespace is where the API's Meetings live.
	Namespace string
	// Cache reads Meetings; it must have the IdentityIndex that Setup
	// registers (the manager's client).
	Cache client.Reader
	// Secrets reads the room Secrets. The API may only get Secrets, not
	// list or watch them, so this is an uncached reader (the manager's
	// APIReader).
	Secrets client.Reader
	// Policy is the schedule policy (the operator's lead time and grace),
	// for Retry-After before the media comes up.
	Policy schedule.Policy
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Rooms is meeting.Rooms for a cluster: the operator runs each meeting's
// media, and Rooms only reads what it reports (the Meeting's status and the
// room Secret).
type Rooms struct {
	cfg RoomsConfig
}

var _ meeting.Rooms = (*Rooms)(nil)

// NewRooms returns the cluster's Rooms.
func NewRooms(cfg RoomsConfig) (*Rooms, error) {
	var errs []error
	if cfg.Namespace == "" {
		errs = append(errs, errors.New("namespace is empty"))
	}
	if cfg.Cache == nil || cfg.Secrets == nil {
		errs = append(errs, errors.New("cache and secrets readers are required"))
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("rooms config: %w", err)
	}
	return &Rooms{cfg: cfg}, nil
}

// Schedule has nothing to do: the REST write that calls it recorded an
// outbox entry in its own transaction, the worker applies it to the Meeting,
// and the operator plans the media from the Meeting's spec.
func (*Rooms) Schedule(context.Context, meeting.Meeting) error { return nil }

// Remove has nothing to do, for the same reason: the outbox deletes the
// Meeting, and the operator's teardown (owner references) closes the media,
// which tells every participant.
func (*Rooms) Remove(context.Context, string, string) error { return nil }

// Status is the cluster's phase of the meeting (status.phase of its
// Meeting) and whether its media is ready; zero while the cluster does not
// know the meeting (the service then shows the phase it computes). Online
// is not known to the API in a cluster: 0.
func (r *Rooms) Status(ctx context.Context, identity string) meeting.RoomStatus {
	m, err := r.meeting(ctx, identity)
	if err != nil || m == nil {
		return meeting.RoomStatus{}
	}
	return meeting.RoomStatus{Phase: meeting.Phase(m.Status.Phase), Ready: ready(m)}
}

// Room returns what a client needs to join the meeting's room in the
// cluster: the proxied signalling path (SignalPath, on the API's own
// origin), the room Secret's keys and the TURN URIs of the Meeting's status.
// While the Meeting is Scheduled or Starting (or not in the cluster yet) it
// returns a *meeting.NotReadyError saying when to retry; once it is Ended,
// or Ending past its grace, an error wrapping meeting.ErrEnded.
func (r *Rooms) Room(ctx context.Context, identity string) (meeting.Room, error) {
	m, err := r.meeting(ctx, identity)
	if err != nil {
		return meeting.Room{}, err
	}
	if m == nil {
		return meeting.Room{}, &meeting.NotReadyError{Identity: identity, RetryAfter: startingRetry,
			Reason: "the meeting is not in the cluster yet"}
	}
	now := r.cfg.Now()
	switch m.Status.Phase {
	case rtcv1alpha1.PhaseEnded:
		return meeting.Room{}, &meeting.Error{Kind: meeting.ErrEnded, Msg: fmt.Sprintf("meeting %s has ended", identity)}
	case rtcv1alpha1.PhaseEnding:
		if end := m.Spec.EndAt.Add(r.cfg.Policy.Grace); !now.Before(end) {
			return meeting.Room{}, &meeting.Error{Kind: meeting.ErrEnded, Msg: fmt.Sprintf("meeting %s ended at %s", identity, m.Spec.EndAt.UTC().Format(time.RFC3339))}
		}
	case rtcv1alpha1.PhaseRunning:
	case rtcv1alpha1.PhaseScheduled:
		wait := m.Spec.BeginAt.Add(-r.cfg.Policy.LeadTime).Sub(now)
		return meeting.Room{}, &meeting.NotReadyError{Identity: identity, RetryAfter: max(wait, startingRetry),
			Reason: "the cluster has not started the meeting's media yet"}
	case rtcv1alpha1.PhaseFailed:
		return meeting.Room{}, &meeting.NotReadyError{Identity: identity, RetryAfter: 30 * time.Second,
			Reason: "the cluster cannot run the meeting's media: " + readyMessage(m)}
	default: // Starting, or no status yet
		return meeting.Room{}, &meeting.NotReadyError{Identity: identity, RetryAfter: startingRetry,
			Reason: "the meeting's media is starting"}
	}
	if m.Status.SignalURL == "" {
		return meeting.Room{}, &meeting.NotReadyError{Identity: identity, RetryAfter: startingRetry,
			Reason: "the meeting's media has no signalling endpoint yet"}
	}
	var sec corev1.Secret
	key := client.ObjectKey{Namespace: r.cfg.Namespace, Name: rtcv1alpha1.MediaSecretName(m.Name)}
	if err := r.cfg.Secrets.Get(ctx, key, &sec); err != nil {
		if apierrors.IsNotFound(err) {
			return meeting.Room{}, &meeting.NotReadyError{Identity: identity, RetryAfter: startingRetry,
				Reason: "the room's Secret does not exist yet"}
		}
		return meeting.Room{}, fmt.Errorf("read Secret %s: %w", key, err)
	}
	tokenKey, turnSecret := sec.Data[rtcv1alpha1.SecretTokenKey], sec.Data[rtcv1alpha1.SecretTURNKey]
	if len(tokenKey) == 0 {
		return meeting.Room{}, fmt.Errorf("Secret %s has no %s", key, rtcv1alpha1.SecretTokenKey)
	}
	room := meeting.Room{SignalURL: SignalPath(identity), TokenKey: tokenKey}
	if len(turnSecret) > 0 && len(m.Status.TURNURIs) > 0 {
		room.TURNSecret, room.TURNURIs = turnSecret, append([]string(nil), m.Status.TURNURIs...)
	}
	return room, nil
}

// meeting returns the Meeting of the namespace with that identity from the
// cache, nil when there is none.
func (r *Rooms) meeting(ctx context.Context, identity string) (*rtcv1alpha1.Meeting, error) {
	return findMeeting(ctx, r.cfg.Cache, r.cfg.Namespace, identity)
}

// findMeeting returns the Meeting with that identity, nil when there is
// none. A Meeting being deleted, or one the sync refused because another
// holds its identity (Synced=False, Conflict), does not count.
func findMeeting(ctx context.Context, c client.Reader, ns, identity string) (*rtcv1alpha1.Meeting, error) {
	var l rtcv1alpha1.MeetingList
	if err := c.List(ctx, &l, client.InNamespace(ns), client.MatchingFields{IdentityIndex: strings.ToLower(identity)}); err != nil {
		return nil, fmt.Errorf("find Meeting %s: %w", identity, err)
	}
	for i := range l.Items {
		m := &l.Items[i]
		if m.DeletionTimestamp != nil {
			continue
		}
		if c := meta.FindStatusCondition(m.Status.Conditions, ConditionSynced); c != nil && c.Reason == ReasonConflict {
			continue
		}
		return m, nil
	}
	return nil, nil
}

// ready says whether the Meeting's Ready condition is True.
func ready(m *rtcv1alpha1.Meeting) bool {
	return meta.IsStatusConditionTrue(m.Status.Conditions, rtcv1alpha1.ConditionReady)
}

func readyMessage(m *rtcv1alpha1.Meeting) string {
	if c := meta.FindStatusCondition(m.Status.Conditions, rtcv1alpha1.ConditionReady); c != nil && c.Message != "" {
		return c.Message
	}
	return "no reason given"
}
