package sync

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	rtcv1alpha1 "meeting.dev/meeting/api/v1alpha1"
	"meeting.dev/meeting/internal/meeting"
	"meeting.dev/meeting/internal/store"
)

// Names the API uses in the cluster.
const (
	// FieldManager is the API's field manager in server-side apply.
	FieldManager = "meeting-api"
	// Finalizer holds a Meeting until the API has deleted its row.
	Finalizer = "rtc.meeting.dev/api-sync"
	// ConditionSynced is the one status condition the API owns.
	ConditionSynced = "Synced"
	// IdentityIndex is the field index of Meetings by lower-cased RoomIdentity().
	IdentityIndex = "rtc.meeting.dev/identity"
)

// Reasons of the Synced condition.
const (
	ReasonSynced         = "Synced"
	ReasonUnknownUsers   = "UnknownUsers"
	ReasonUnknownCreator = "UnknownCreator"
	ReasonConflict       = "Conflict"
)

// DefaultMaxParticipants is the CRD's default of spec.maxParticipants.
const DefaultMaxParticipants = 50

// simpleName is an identity that makes a resource name as it is.
var simpleName = regexp.MustCompile(`^[a-z0-9-]*[a-z0-9]$`)

// ResourceName is the name of the Meeting resource of a meeting created
// through REST: "m-"+identity when that is a short DNS label, otherwise a
// readable prefix and a hash of the identity. It is always a DNS label of at
// most 50 characters starting with a letter.
func ResourceName(identity string) string {
	if len(identity) <= 48 && simpleName.MatchString(identity) {
		return "m-" + identity
	}
	b := []byte(identity)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			b[i] = '-'
		}
	}
	if len(b) > 37 {
		b = b[:37]
	}
	sum := sha256.Sum256([]byte(identity))
	return "m-" + strings.TrimRight(string(b), "-") + "-" + hex.EncodeToString(sum[:])[:10]
}

// ToSpec is the part of a Meeting's spec the API owns, from a row: the
// identity, title, times, creator and participants (by username, sorted,
// without the creator and duplicates) and maxParticipants.
func ToSpec(m meeting.Meeting, creator string, participants []string) rtcv1alpha1.MeetingSpec {
	max := m.MaxParticipants
	if max <= 0 {
		max = DefaultMaxParticipants
	}
	return rtcv1alpha1.MeetingSpec{
		Identity:        m.Identity,
		Title:           m.Name,
		BeginAt:         metav1.NewTime(m.BeginAt.UTC()),
		EndAt:           metav1.NewTime(m.EndAt.UTC()),
		Creator:         creator,
		Participants:    normalizeUsers(creator, participants),
		MaxParticipants: int32(max),
	}
}

// normalizeUsers sorts participants and drops duplicates (without regard
// to letter case), empty names and the creator.
func normalizeUsers(creator string, participants []string) []string {
	var out []string
	seen := map[string]bool{strings.ToLower(creator): true}
	for _, p := range participants {
		l := strings.ToLower(p)
		if p == "" || seen[l] {
			continue
		}
		seen[l] = true
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// shape is what the row and the resource must agree on, in a form that
// compares: names lower-cased, times to the second (a resource keeps
// seconds only).
type shape struct {
	identity, title string
	beginAt, endAt  int64
	creator         string
	participants    string
	max             int32
}

func shapeOf(s rtcv1alpha1.MeetingSpec, identity string) shape {
	ps := normalizeUsers(s.Creator, s.Participants)
	for i := range ps {
		ps[i] = strings.ToLower(ps[i])
	}
	slices.Sort(ps)
	max := s.MaxParticipants
	if max <= 0 {
		max = DefaultMaxParticipants
	}
	return shape{
		identity: strings.ToLower(identity), title: s.Title,
		beginAt: s.BeginAt.Unix(), endAt: s.EndAt.Unix(),
		creator: strings.ToLower(s.Creator), participants: strings.Join(ps, "\x00"), max: max,
	}
}

// rowShape is the shape of a row.
func rowShape(sm store.SyncedMeeting) shape {
	return shapeOf(ToSpec(sm.Meeting, sm.Creator, sm.Participants), sm.Meeting.Identity)
}

// resourceShape is the shape of a Meeting with only the known participants.
func resourceShape(m *rtcv1alpha1.Meeting, known []string) shape {
	s := m.Spec
	s.Participants = known
	return shapeOf(s, m.RoomIdentity())
}

// SpecDiffers reports whether a Meeting's spec differs from the row in a
// field the API owns (participants compared as a set, without letter case;
// times to the second).
func SpecDiffers(sm store.SyncedMeeting, m *rtcv1alpha1.Meeting) bool {
	return rowShape(sm) != resourceShape(m, m.Spec.Participants)
}

// clusterRow is the meeting_cluster row of a Meeting: its name, UID,
// resourceVersion and the operator's status.
func clusterRow(m *rtcv1alpha1.Meeting, now time.Time) store.ClusterRow {
	c := store.ClusterRow{
		Identity: strings.ToLower(m.RoomIdentity()), Name: m.Name, UID: string(m.UID),
		ResourceVersion: m.ResourceVersion, Phase: string(m.Status.Phase), SignalURL: m.Status.SignalURL,
		SyncedAt: now.UTC(),
	}
	if len(m.Status.TURNURIs) > 0 {
		b, _ := json.Marshal(m.Status.TURNURIs) // a []string always marshals
		c.TURNURIs = string(b)
	}
	if r := meta.FindStatusCondition(m.Status.Conditions, rtcv1alpha1.ConditionReady); r != nil {
		c.Ready = r.Status == metav1.ConditionTrue
		c.ReadyReason, c.ReadyMessage = r.Reason, truncate(r.Message, 1000)
	}
	return c
}

// sameStatus reports whether two meeting_cluster rows say the same (SyncedAt
// and the resourceVersion aside).
func sameStatus(a, b store.ClusterRow) bool {
	a.SyncedAt, b.SyncedAt = time.Time{}, time.Time{}
	a.ResourceVersion, b.ResourceVersion = "", ""
	return a == b
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
