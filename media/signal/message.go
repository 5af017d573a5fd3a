// Package signal is the SFU's signalling protocol: JSON messages over a
// WebSocket (docs/signaling.md), their decoder, and a connection that runs
// one reader and one writer per WebSocket.
package signal

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"
)

// Message types. Client to server: Join, Offer, Answer, Candidate, Leave,
// State, and from a host Mute and Remove. Server to client: Joined, Answer,
// Offer, ParticipantJoined, ParticipantLeft, ParticipantUpdated,
// TrackPublished, TrackUnpublished, Muted, Ending, Closing, Error.
const (
	TypeJoin               = "join"
	TypeJoined             = "joined"
	TypeOffer              = "offer"
	TypeAnswer             = "answer"
	TypeCandidate          = "candidate"
	TypeLeave              = "leave"
	TypeState              = "state"
	TypeMute               = "mute"
	TypeRemove             = "remove"
	TypeParticipantJoined  = "participant_joined"
	TypeParticipantLeft    = "participant_left"
	TypeParticipantUpdated = "participant_updated"
	TypeMuted              = "muted"
	TypeTrackPublished     = "track_published"
	TypeTrackUnpublished   = "track_unpublished"
	TypeEnding             = "ending"
	TypeClosing            = "closing"
	TypeError              = "error"
)

// Peer connection names used by Candidate.Target.
const (
	// TargetPublish is the client's sending peer connection: the client
	// offers on it, the server answers.
	TargetPublish = "publish"
	// TargetSubscribe is the client's receiving peer connection: the
	// server offers on it, the client answers.
	TargetSubscribe = "subscribe"
)

// Track sources.
const (
	SourceAudio  = "audio"
	SourceCamera = "camera"
	SourceScreen = "screen"
)

// Error codes sent in Error.Code.
const (
	CodeBadMessage   = "bad_message"
	CodeUnknownType  = "unknown_type"
	CodeUnauthorized = "unauthorized"
	CodeRoomFull     = "room_full"
	CodeClosing      = "closing"
	CodeNotJoined    = "not_joined"
	CodeNegotiation  = "negotiation_failed"
	CodeBadChat      = "bad_chat"
	CodeInternal     = "internal"
	CodeForbidden    = "forbidden"
	CodeRemoved      = "removed"
)

// Limits checked by Decode.
const (
	// MaxMessageSize is the largest WebSocket message accepted, in bytes.
	MaxMessageSize = 64 << 10
	// MaxSDPSize is the largest SDP accepted in an offer or answer.
	MaxSDPSize = 60 << 10
	// MaxTracks is the most tracks one offer may describe.
	MaxTracks = 8
	// MaxChatText is the largest chat text, in bytes.
	MaxChatText = 4096
	// MaxTrackID is the longest track id of an offer's tracks, in bytes:
	// an msid's id is 1 to 64 characters (RFC 8830).
	MaxTrackID = 64
	// MaxToken is the longest join token accepted, in bytes.
	MaxToken = 4096
	// MaxCandidate is the longest candidate line of a Candidate, in bytes.
	MaxCandidate = 1024
	// MaxCandidateField is the longest sdpMid or usernameFragment, in bytes.
	MaxCandidateField = 256
	// MaxParticipantID is the longest participant id of a Mute or Remove,
	// in bytes (the server's ids are UUIDs).
	MaxParticipantID = 64
)

// Message is one signalling message: every type below implements it.
type Message interface {
	// MessageType returns the value of the message's "type" field.
	MessageType() string
}

// Join is the first message of a connection that did not pass ?token= on the URL.
type Join struct {
	Token string `json:"token"`
}

// Participant describes someone in the room and their current state.
type Participant struct {
	ID   string `json:"id"`
	User string `json:"user"`
	Name string `json:"name"`
	// Host is true for a host (a token with role host): a host may mute
	// and remove the others.
	Host bool `json:"host"`
	// AudioMuted is true while the participant's audio is muted: the
	// server forwards none of it.
	AudioMuted bool `json:"audio_muted"`
	// VideoMuted is true while the participant's camera is off (as the
	// participant says).
	VideoMuted bool `json:"video_muted"`
	// HandRaised is true while the participant raises a hand.
	HandRaised bool `json:"hand_raised"`
}

// Track describes a published track as subscribers see it. On the
// subscribe peer connection its MediaStreamTrack id is ID and its stream id
// is Participant.
type Track struct {
	ID          string `json:"id"`
	Participant string `json:"participant"`
	Kind        string `json:"kind"`
	Source      string `json:"source"`
}

// Joined answers a successful join.
type Joined struct {
	Room         string        `json:"room"`
	You          Participant   `json:"you"`
	Participants []Participant `json:"participants"`
	Tracks       []Track       `json:"tracks"`
}

// TrackSource tells the server what a track of an offer is.
type TrackSource struct {
	// ID is the track id (msid) in the offer's SDP.
	ID string `json:"id"`
	// Source is audio, camera or screen.
	Source string `json:"source"`
}

// Offer carries an SDP offer: from the client for the publish peer
// connection, from the server for the subscribe peer connection.
type Offer struct {
	SDP string `json:"sdp"`
	// Tracks names the source of the client's tracks (client offers only).
	Tracks []TrackSource `json:"tracks,omitempty"`
}

// Answer carries an SDP answer to the other side's last offer.
type Answer struct {
	SDP string `json:"sdp"`
}

// ICECandidate is RTCIceCandidateInit.
type ICECandidate struct {
	Candidate        string  `json:"candidate"`
	SDPMid           *string `json:"sdpMid,omitempty"`
	SDPMLineIndex    *uint16 `json:"sdpMLineIndex,omitempty"`
	UsernameFragment *string `json:"usernameFragment,omitempty"`
}

// Candidate trickles one ICE candidate of the client's peer connection Target.
type Candidate struct {
	Target    string       `json:"target"`
	Candidate ICECandidate `json:"candidate"`
}

// Leave ends the session.
type Leave struct{}

// State changes the sender's own state: only the fields given change, and
// at least one must be. Everyone, the sender included, gets a
// ParticipantUpdated.
type State struct {
	AudioMuted *bool `json:"audio_muted,omitempty"`
	VideoMuted *bool `json:"video_muted,omitempty"`
	HandRaised *bool `json:"hand_raised,omitempty"`
}

// Mute asks the server (from a host) to mute another participant's audio.
type Mute struct {
	// Participant is the id of the participant to mute.
	Participant string `json:"participant"`
}

// Remove asks the server (from a host) to remove another participant's
// user from the room: every connection of that user.
type Remove struct {
	// Participant is the id of one connection of the user to remove.
	Participant string `json:"participant"`
}

// ParticipantUpdated announces a participant's new state.
type ParticipantUpdated struct {
	Participant Participant `json:"participant"`
}

// Muted tells a participant that a host muted its audio.
type Muted struct {
	By Participant `json:"by"`
}

// ParticipantJoined announces a newcomer.
type ParticipantJoined struct {
	Participant Participant `json:"participant"`
}

// ParticipantLeft announces a departure.
type ParticipantLeft struct {
	Participant Participant `json:"participant"`
}

// TrackPublished announces a track; an offer adding it follows.
type TrackPublished struct {
	Track Track `json:"track"`
}

// TrackUnpublished announces that a track ended; an offer removing it follows.
type TrackUnpublished struct {
	Track Track `json:"track"`
}

// Ending warns that the room closes at ClosesAt, RemainingMS milliseconds
// after the message was sent; a Closing follows then.
type Ending struct {
	ClosesAt    time.Time `json:"closes_at"`
	RemainingMS int64     `json:"remaining_ms"`
}

// NewEnding returns the Ending of a room closing at closesAt, as of now.
func NewEnding(closesAt, now time.Time) Ending {
	return Ending{ClosesAt: closesAt, RemainingMS: max(0, closesAt.Sub(now).Milliseconds())}
}

// MarshalJSON writes ClosesAt in UTC with millisecond precision.
func (e Ending) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		ClosesAt    string `json:"closes_at"`
		RemainingMS int64  `json:"remaining_ms"`
	}{FormatTime(e.ClosesAt), e.RemainingMS})
}

// Closing says the server (or the room) is closing: it closes the
// connection at Deadline.
type Closing struct {
	Reason   string    `json:"reason"`
	Deadline time.Time `json:"deadline"`
}

// MarshalJSON writes Deadline in UTC with millisecond precision.
func (c Closing) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Reason   string `json:"reason"`
		Deadline string `json:"deadline"`
	}{c.Reason, FormatTime(c.Deadline)})
}

// TimeLayout is how the protocol writes times: RFC 3339 in UTC with
// milliseconds, such as 2026-11-24T10:00:00.123Z.
const TimeLayout = "2006-01-02T15:04:05.000Z07:00"

// FormatTime writes t in TimeLayout.
func FormatTime(t time.Time) string { return t.UTC().Format(TimeLayout) }

// Error reports a refused or failed request.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (Join) MessageType() string               { return TypeJoin }
func (Joined) MessageType() string             { return TypeJoined }
func (Offer) MessageType() string              { return TypeOffer }
func (Answer) MessageType() string             { return TypeAnswer }
func (Candidate) MessageType() string          { return TypeCandidate }
func (Leave) MessageType() string              { return TypeLeave }
func (State) MessageType() string              { return TypeState }
func (Mute) MessageType() string               { return TypeMute }
func (Remove) MessageType() string             { return TypeRemove }
func (ParticipantUpdated) MessageType() string { return TypeParticipantUpdated }
func (Muted) MessageType() string              { return TypeMuted }
func (ParticipantJoined) MessageType() string  { return TypeParticipantJoined }
func (ParticipantLeft) MessageType() string    { return TypeParticipantLeft }
func (TrackPublished) MessageType() string     { return TypeTrackPublished }
func (TrackUnpublished) MessageType() string   { return TypeTrackUnpublished }
func (Ending) MessageType() string             { return TypeEnding }
func (Closing) MessageType() string            { return TypeClosing }
func (Error) MessageType() string              { return TypeError }

// Error makes Error usable as a Go error.
func (e Error) Error() string { return e.Code + ": " + e.Message }

// ErrUnknownType is returned by Decode for a message of an unknown type.
var ErrUnknownType = errors.New("unknown message type")

// newMessage returns a pointer to the zero message of type t.
func newMessage(t string) (Message, error) {
	switch t {
	case TypeJoin:
		return &Join{}, nil
	case TypeJoined:
		return &Joined{}, nil
	case TypeOffer:
		return &Offer{}, nil
	case TypeAnswer:
		return &Answer{}, nil
	case TypeCandidate:
		return &Candidate{}, nil
	case TypeLeave:
		return &Leave{}, nil
	case TypeState:
		return &State{}, nil
	case TypeMute:
		return &Mute{}, nil
	case TypeRemove:
		return &Remove{}, nil
	case TypeParticipantUpdated:
		return &ParticipantUpdated{}, nil
	case TypeMuted:
		return &Muted{}, nil
	case TypeParticipantJoined:
		return &ParticipantJoined{}, nil
	case TypeParticipantLeft:
		return &ParticipantLeft{}, nil
	case TypeTrackPublished:
		return &TrackPublished{}, nil
	case TypeTrackUnpublished:
		return &TrackUnpublished{}, nil
	case TypeEnding:
		return &Ending{}, nil
	case TypeClosing:
		return &Closing{}, nil
	case TypeError:
		return &Error{}, nil
	case TypeCongestion:
		return &Congestion{}, nil
	}
	return nil, fmt.Errorf("%w %.40q", ErrUnknownType, t)
}

// Decode parses one message and checks it. It returns a value (not a
// pointer) of one of the message types. Unknown fields are ignored; an
// unknown type, a missing required field or an oversized field is an error.
func Decode(b []byte) (Message, error) {
	if len(b) > MaxMessageSize {
		return nil, fmt.Errorf("message of %d bytes exceeds %d", len(b), MaxMessageSize)
	}
	var head struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(b, &head); err != nil {
		return nil, fmt.Errorf("not a JSON object with a type: %w", err)
	}
	if head.Type == "" {
		return nil, errors.New(`missing "type"`)
	}
	p, err := newMessage(head.Type)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, p); err != nil {
		return nil, fmt.Errorf("%s: %w", head.Type, err)
	}
	m := deref(p)
	if err := validate(m); err != nil {
		return nil, fmt.Errorf("%s: %w", head.Type, err)
	}
	return m, nil
}

func deref(p Message) Message {
	switch v := p.(type) {
	case *Join:
		return *v
	case *Joined:
		return *v
	case *Offer:
		return *v
	case *Answer:
		return *v
	case *Candidate:
		return *v
	case *Leave:
		return *v
	case *State:
		return *v
	case *Mute:
		return *v
	case *Remove:
		return *v
	case *ParticipantUpdated:
		return *v
	case *Muted:
		return *v
	case *ParticipantJoined:
		return *v
	case *ParticipantLeft:
		return *v
	case *TrackPublished:
		return *v
	case *TrackUnpublished:
		return *v
	case *Ending:
		return *v
	case *Closing:
		return *v
	case *Error:
		return *v
	case *Congestion:
		return *v
	}
	return p
}

func validate(m Message) error {
	switch v := m.(type) {
	case Join:
		if v.Token == "" {
			return errors.New("token is required")
		}
		if len(v.Token) > MaxToken {
			return fmt.Errorf("token exceeds %d bytes", MaxToken)
		}
	case Offer:
		if v.SDP == "" {
			return errors.New("sdp is required")
		}
		if len(v.SDP) > MaxSDPSize {
			return fmt.Errorf("sdp exceeds %d bytes", MaxSDPSize)
		}
		if len(v.Tracks) > MaxTracks {
			return fmt.Errorf("more than %d tracks", MaxTracks)
		}
		for _, t := range v.Tracks {
			if t.ID == "" {
				return errors.New("track id is required")
			}
			if len(t.ID) > MaxTrackID {
				return fmt.Errorf("track id of %d bytes exceeds %d", len(t.ID), MaxTrackID)
			}
			if !ValidSource(t.Source) {
				return fmt.Errorf("track %q: source %.20q is not audio, camera or screen", t.ID, t.Source)
			}
		}
	case Answer:
		if v.SDP == "" {
			return errors.New("sdp is required")
		}
		if len(v.SDP) > MaxSDPSize {
			return fmt.Errorf("sdp exceeds %d bytes", MaxSDPSize)
		}
	case Candidate:
		if v.Target != TargetPublish && v.Target != TargetSubscribe {
			return fmt.Errorf("target %.20q is not publish or subscribe", v.Target)
		}
		if len(v.Candidate.Candidate) > MaxCandidate {
			return fmt.Errorf("candidate exceeds %d bytes", MaxCandidate)
		}
		for name, f := range map[string]*string{"sdpMid": v.Candidate.SDPMid, "usernameFragment": v.Candidate.UsernameFragment} {
			if f != nil && len(*f) > MaxCandidateField {
				return fmt.Errorf("%s exceeds %d bytes", name, MaxCandidateField)
			}
		}
	case State:
		if v.AudioMuted == nil && v.VideoMuted == nil && v.HandRaised == nil {
			return errors.New("one of audio_muted, video_muted and hand_raised is required")
		}
	case Mute:
		return validParticipantID(v.Participant)
	case Remove:
		return validParticipantID(v.Participant)
	case Ending:
		if v.ClosesAt.IsZero() {
			return errors.New("closes_at is required")
		}
		if v.RemainingMS < 0 {
			return errors.New("remaining_ms is negative")
		}
	case Error:
		if v.Code == "" {
			return errors.New("code is required")
		}
	}
	return nil
}

// validParticipantID checks the participant id of a Mute or Remove.
func validParticipantID(id string) error {
	if id == "" {
		return errors.New("participant is required")
	}
	if len(id) > MaxParticipantID {
		return fmt.Errorf("participant exceeds %d bytes", MaxParticipantID)
	}
	return nil
}

// ValidSource reports whether s is a track source.
func ValidSource(s string) bool {
	return s == SourceAudio || s == SourceCamera || s == SourceScreen
}

// Encode returns m as JSON with its "type" field.
func Encode(m Message) ([]byte, error) {
	body, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", m.MessageType(), err)
	}
	typ, _ := json.Marshal(m.MessageType())
	out := make([]byte, 0, len(body)+len(typ)+9)
	out = append(out, `{"type":`...)
	out = append(out, typ...)
	if len(body) > 2 {
		out = append(out, ',')
		out = append(out, body[1:]...)
	} else {
		out = append(out, '}')
	}
	return out, nil
}

// ChatSend is what a client writes on the "chat" data channel.
type ChatSend struct {
	Text string `json:"text"`
}

// ChatMessage is what the room relays on every participant's "chat" data
// channel, the sender's included.
type ChatMessage struct {
	From string    `json:"from"`
	Name string    `json:"name"`
	Text string    `json:"text"`
	At   time.Time `json:"at"`
}

// MarshalJSON writes At in UTC with millisecond precision.
func (m ChatMessage) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		From string `json:"from"`
		Name string `json:"name"`
		Text string `json:"text"`
		At   string `json:"at"`
	}{m.From, m.Name, m.Text, FormatTime(m.At)})
}

// DecodeChat parses and checks a chat data channel message from a client.
func DecodeChat(b []byte) (ChatSend, error) {
	if len(b) > MaxChatText+256 {
		return ChatSend{}, fmt.Errorf("chat message of %d bytes is too large", len(b))
	}
	var c ChatSend
	if err := json.Unmarshal(b, &c); err != nil {
		return ChatSend{}, fmt.Errorf("chat: %w", err)
	}
	switch {
	case c.Text == "":
		return ChatSend{}, errors.New("chat: text is empty")
	case len(c.Text) > MaxChatText:
		return ChatSend{}, fmt.Errorf("chat: text exceeds %d bytes", MaxChatText)
	case !utf8.ValidString(c.Text):
		return ChatSend{}, errors.New("chat: text is not UTF-8")
	}
	return c, nil
}
