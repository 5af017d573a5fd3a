package v1alpha1

import (
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Label keys and the finalizer the operator puts on a Meeting's children.
const (
	// MeetingLabel names the Meeting that owns an object.
	MeetingLabel = Group + "/meeting"
	// MediaFinalizer holds a Meeting while its media children exist.
	MediaFinalizer = Group + "/media"
)

// The room's Secret, which the operator creates as MediaSecretName(meeting)
// in the Meeting's namespace. Each value is 32 random bytes, hex-encoded (64
// characters); the text itself is the key, used byte for byte.
const (
	// SecretTokenKey holds the HMAC-SHA256 key of the room's join tokens.
	SecretTokenKey = "token-key"
	// SecretTURNKey holds the room's TURN REST API shared secret.
	SecretTURNKey = "turn-secret"
)

// MediaSecretName names the room Secret of the Meeting called meeting.
func MediaSecretName(meeting string) string { return meeting + "-media" }

// Phase is where a Meeting is in its life.
// +kubebuilder:validation:Enum=Scheduled;Starting;Running;Ending;Ended;Failed
type Phase string

// The phases of a Meeting.
const (
	// PhaseScheduled: before beginAt minus the operator's lead time; no media runs.
	PhaseScheduled Phase = "Scheduled"
	// PhaseStarting: the room's SFU and TURN server are being brought up.
	PhaseStarting Phase = "Starting"
	// PhaseRunning: the SFU and TURN server are available; endpoints are in status.
	PhaseRunning Phase = "Running"
	// PhaseEnding: endAt has passed; media stays up for the grace period.
	PhaseEnding Phase = "Ending"
	// PhaseEnded: the grace period is over and the media has been removed.
	PhaseEnded Phase = "Ended"
	// PhaseFailed: the operator cannot run the media; the Ready condition says why.
	PhaseFailed Phase = "Failed"
)

// Condition types of a Meeting.
const (
	// ConditionReady is true while the room's media is available to join.
	ConditionReady = "Ready"
	// ConditionSFUAvailable is true while the SFU Deployment is available.
	ConditionSFUAvailable = "SFUAvailable"
	// ConditionTURNAvailable is true while the TURN Deployment is available
	// (and true with reason Disabled when the meeting runs without TURN).
	ConditionTURNAvailable = "TURNAvailable"
)

// MeetingSpec is the meeting: who meets, when, and with which media.
// +kubebuilder:validation:XValidation:rule="self.endAt > self.beginAt",message="endAt must be after beginAt"
// +kubebuilder:validation:XValidation:rule="has(self.identity) == has(oldSelf.identity) && (!has(self.identity) || self.identity == oldSelf.identity)",message="identity is immutable"
// +kubebuilder:validation:XValidation:rule="!has(self.participants) || size(self.participants) <= self.maxParticipants",message="more participants than maxParticipants"
type MeetingSpec struct {
	// identity is the room identity that clients and join tokens name: lowercase
	// letters, digits, '_', '.' and '-', starting with a letter or digit (the API
	// stores identities in lower case). It cannot change once the Meeting
	// exists; when empty the Meeting's UID is used.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^[a-z0-9][a-z0-9_.-]*$`
	// +optional
	Identity string `json:"identity,omitempty"`

	// title is what participants see.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=200
	// +required
	Title string `json:"title"`

	// beginAt is when the meeting begins; its media comes up a lead time before.
	// +required
	BeginAt metav1.Time `json:"beginAt"`

	// endAt is when the meeting ends; its media goes away a grace period after.
	// It must be after beginAt.
	// +required
	EndAt metav1.Time `json:"endAt"`

	// creator is the username of the user who created the meeting.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=100
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9][A-Za-z0-9._-]*$`
	// +required
	Creator string `json:"creator"`

	// participants are the usernames of the users invited besides the creator;
	// at most maxParticipants of them.
	// +listType=set
	// +kubebuilder:validation:MaxItems=1000
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=100
	// +kubebuilder:validation:items:Pattern=`^[A-Za-z0-9][A-Za-z0-9._-]*$`
	// +optional
	Participants []string `json:"participants,omitempty"`

	// maxParticipants caps how many may be in the room at once, and how many
	// participants (besides the creator) may be invited.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	// +kubebuilder:default=50
	// +optional
	MaxParticipants int32 `json:"maxParticipants,omitempty"`

	// media chooses the room's media servers and their resources.
	// +kubebuilder:default={}
	// +optional
	Media MediaSpec `json:"media,omitempty"`
}

// MediaSpec chooses the room's media servers and their resources.
type MediaSpec struct {
	// turn runs a TURN server for the room, for clients that cannot reach the
	// SFU directly. Defaults to true.
	// +kubebuilder:default=true
	// +optional
	TURN *bool `json:"turn,omitempty"`

	// sfuResources overrides the operator's default resources of the SFU container.
	// +optional
	SFUResources Resources `json:"sfuResources,omitempty"`

	// turnResources overrides the operator's default resources of the TURN container.
	// +optional
	TURNResources Resources `json:"turnResources,omitempty"`
}

// TURNEnabled reports whether the meeting runs a TURN server (the default).
func (m MediaSpec) TURNEnabled() bool { return m.TURN == nil || *m.TURN }

// Resources are the CPU and memory a media container requests; memory is also
// its limit. Unset fields take the operator's defaults.
type Resources struct {
	// cpu requested, e.g. 250m.
	// +optional
	CPU *resource.Quantity `json:"cpu,omitempty"`
	// memory requested and limit, e.g. 256Mi.
	// +optional
	Memory *resource.Quantity `json:"memory,omitempty"`
}

// MeetingStatus is what the operator observed and did. It is rebuilt from the
// children on every reconcile; only the timestamps carry history.
type MeetingStatus struct {
	// phase is where the meeting is in its life.
	// +optional
	Phase Phase `json:"phase,omitempty"`

	// conditions say whether the media is up, and why not when it is not.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// participants is how many users are invited, the creator included.
	// +optional
	Participants int32 `json:"participants,omitempty"`

	// identity is the room identity in use (spec.identity, or the UID).
	// +optional
	Identity string `json:"identity,omitempty"`

	// signalURL is the SFU's signalling WebSocket URL, set while media runs.
	// +optional
	SignalURL string `json:"signalURL,omitempty"`

	// turnURIs are the TURN server's URIs (UDP and TCP), set while media runs.
	// +listType=atomic
	// +optional
	TURNURIs []string `json:"turnURIs,omitempty"`

	// startedAt is when the media first became available.
	// +optional
	StartedAt *metav1.Time `json:"startedAt,omitempty"`

	// endedAt is when the media was removed.
	// +optional
	EndedAt *metav1.Time `json:"endedAt,omitempty"`

	// nextTransitionAt is when the schedule changes the phase next.
	// +optional
	NextTransitionAt *metav1.Time `json:"nextTransitionAt,omitempty"`

	// observedGeneration is the spec generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
}

// Meeting is a scheduled online meeting whose media the operator runs for
// exactly its time window.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=mtg,categories=meeting
// +kubebuilder:validation:XValidation:rule="self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$') && size(self.metadata.name) <= 50",message="name must be a DNS label of at most 50 characters starting with a letter (children are named after it)"
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Begin",type=string,format=date-time,JSONPath=`.spec.beginAt`
// +kubebuilder:printcolumn:name="End",type=string,format=date-time,JSONPath=`.spec.endAt`
// +kubebuilder:printcolumn:name="Participants",type=integer,JSONPath=`.status.participants`,description="users invited, the creator included"
// +kubebuilder:printcolumn:name="Max",type=integer,JSONPath=`.spec.maxParticipants`,description="most participants in the room at once",priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Meeting struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec MeetingSpec `json:"spec"`
	// +optional
	Status MeetingStatus `json:"status,omitempty"`
}

// RoomIdentity is the identity clients and join tokens name: spec.identity,
// or the UID when it is empty.
func (m *Meeting) RoomIdentity() string {
	if m.Spec.Identity != "" {
		return m.Spec.Identity
	}
	return string(m.UID)
}

// InvitedCount is how many distinct users are invited, the creator included.
func (m *Meeting) InvitedCount() int32 {
	seen := map[string]bool{m.Spec.Creator: true}
	for _, p := range m.Spec.Participants {
		seen[p] = true
	}
	return int32(len(seen))
}

// MeetingList is a list of Meetings.
//
// +kubebuilder:object:root=true
type MeetingList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Meeting `json:"items"`
}
