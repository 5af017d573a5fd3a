package signal

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestDecodeRoundTrip(t *testing.T) {
	mid := "0"
	idx := uint16(0)
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	yes, no := true, false
	for _, m := range []Message{
		Join{Token: "t"},
		Joined{Room: "r", You: Participant{ID: "p", User: "u", Name: "n"}, Participants: []Participant{{ID: "q"}}, Tracks: []Track{{ID: "p/a", Participant: "p", Kind: "audio", Source: "audio"}}},
		Offer{SDP: "v=0", Tracks: []TrackSource{{ID: "a", Source: SourceScreen}}},
		Answer{SDP: "v=0"},
		Candidate{Target: TargetPublish, Candidate: ICECandidate{Candidate: "candidate:1 1 udp 1 127.0.0.1 9 typ host", SDPMid: &mid, SDPMLineIndex: &idx}},
		Leave{},
		State{AudioMuted: &yes},
		State{AudioMuted: &no, VideoMuted: &yes, HandRaised: &no},
		Mute{Participant: "p"},
		Remove{Participant: "p"},
		ParticipantUpdated{Participant: Participant{ID: "p", User: "u", Name: "n", Host: true, AudioMuted: true, VideoMuted: true, HandRaised: true}},
		Muted{By: Participant{ID: "h", Host: true}},
		ParticipantJoined{Participant: Participant{ID: "p"}},
		ParticipantLeft{Participant: Participant{ID: "p"}},
		TrackPublished{Track: Track{ID: "x"}},
		TrackUnpublished{Track: Track{ID: "x"}},
		Closing{Reason: "bye", Deadline: at},
		Ending{ClosesAt: at.Add(1500 * time.Millisecond), RemainingMS: 1500},
		Error{Code: CodeBadMessage, Message: "m"},
	} {
		b, err := Encode(m)
		if err != nil {
			t.Fatal(err)
		}
		var head struct{ Type string }
		if err := json.Unmarshal(b, &head); err != nil || head.Type != m.MessageType() {
			t.Fatalf("%s: encoded %s", m.MessageType(), b)
		}
		got, err := Decode(b)
		if err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Fatalf("round trip of %s: got %#v", b, got)
		}
	}
}

func TestDecodeRefuses(t *testing.T) {
	for _, tc := range []struct {
		in      string
		unknown bool
	}{
		{`not json`, false},
		{`[]`, false},
		{`{}`, false},
		{`{"type":""}`, false},
		{`{"type":"dance"}`, true},
		{`{"type":"join"}`, false},
		{`{"type":"join","token":5}`, false},
		{`{"type":"offer"}`, false},
		{`{"type":"offer","sdp":"v=0","tracks":[{"id":"a","source":"hologram"}]}`, false},
		{`{"type":"offer","sdp":"v=0","tracks":[{"source":"audio"}]}`, false},
		{`{"type":"answer","sdp":""}`, false},
		{`{"type":"candidate","target":"sideways","candidate":{"candidate":""}}`, false},
		{`{"type":"leave"} {"type":"leave"}`, false},
		{`{"type":"offer","sdp":"` + strings.Repeat("a", MaxSDPSize+1) + `"}`, false},
		{`{"type":"join","token":"` + strings.Repeat("a", MaxMessageSize) + `"}`, false},
		{`{"type":"ending","remaining_ms":5}`, false},
		{`{"type":"ending","closes_at":"2026-01-01T00:05:00Z","remaining_ms":-1}`, false},
		{`{"type":"ending","closes_at":"soon","remaining_ms":1}`, false},
		{`{"type":"offer","sdp":"v=0","tracks":[{"id":"` + strings.Repeat("a", MaxTrackID+1) + `","source":"audio"}]}`, false},
		{`{"type":"join","token":"` + strings.Repeat("a", MaxToken+1) + `"}`, false},
		{`{"type":"candidate","target":"publish","candidate":{"candidate":"` + strings.Repeat("a", MaxCandidate+1) + `"}}`, false},
		{`{"type":"candidate","target":"publish","candidate":{"candidate":"c","sdpMid":"` + strings.Repeat("a", MaxCandidateField+1) + `"}}`, false},
		{`{"type":"candidate","target":"publish","candidate":{"candidate":"c","usernameFragment":"` + strings.Repeat("a", MaxCandidateField+1) + `"}}`, false},
		{`{"type":"state"}`, false},
		{`{"type":"state","audio_muted":null}`, false},
		{`{"type":"state","muted":true}`, false},
		{`{"type":"state","audio_muted":"yes"}`, false},
		{`{"type":"state","audio_muted":1}`, false},
		{`{"type":"state","video_muted":true,"hand_raised":"up"}`, false},
		{`{"type":"mute"}`, false},
		{`{"type":"mute","participant":""}`, false},
		{`{"type":"mute","participant":42}`, false},
		{`{"type":"mute","participant":"` + strings.Repeat("a", MaxParticipantID+1) + `"}`, false},
		{`{"type":"remove"}`, false},
		{`{"type":"remove","participant":["p"]}`, false},
		{`{"type":"remove","participant":"` + strings.Repeat("a", MaxParticipantID+1) + `"}`, false},
	} {
		_, err := Decode([]byte(tc.in))
		if err == nil {
			t.Errorf("Decode(%.60s) succeeded", tc.in)
			continue
		}
		if errors.Is(err, ErrUnknownType) != tc.unknown {
			t.Errorf("Decode(%.60s) = %v; unknown type: %v", tc.in, err, !tc.unknown)
		}
	}
}

// A Participant has all its fields, state included, in JSON, whatever
// their values; a State only the fields it changes.
func TestParticipantAndStateJSON(t *testing.T) {
	b, err := Encode(ParticipantJoined{Participant: Participant{ID: "p", User: "u", Name: "n"}})
	if want := `{"type":"participant_joined","participant":{"id":"p","user":"u","name":"n","host":false,"audio_muted":false,"video_muted":false,"hand_raised":false}}`; err != nil || string(b) != want {
		t.Errorf("Encode = %s, %v; want %s", b, err, want)
	}
	m, err := Decode([]byte(`{"type":"state","hand_raised":true}`))
	if st, ok := m.(State); err != nil || !ok || st.AudioMuted != nil || st.VideoMuted != nil || st.HandRaised == nil || !*st.HandRaised {
		t.Errorf("Decode(state) = %#v, %v", m, err)
	}
	no := false
	b, err = Encode(State{VideoMuted: &no})
	if want := `{"type":"state","video_muted":false}`; err != nil || string(b) != want {
		t.Errorf("Encode = %s, %v; want %s", b, err, want)
	}
	// Unknown fields are ignored, as in every message.
	if m, err := Decode([]byte(`{"type":"mute","participant":"p","why":"noise"}`)); err != nil || m != (Mute{Participant: "p"}) {
		t.Errorf("Decode(mute) = %#v, %v", m, err)
	}
}

func TestDecodeChat(t *testing.T) {
	if c, err := DecodeChat([]byte(`{"text":"hi"}`)); err != nil || c.Text != "hi" {
		t.Fatalf("DecodeChat = %+v, %v", c, err)
	}
	for _, in := range []string{`{}`, `{"text":""}`, `x`, `{"text":"` + strings.Repeat("a", MaxChatText+1) + `"}`} {
		if _, err := DecodeChat([]byte(in)); err == nil {
			t.Errorf("DecodeChat(%.40q) succeeded", in)
		}
	}
}

func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"type":"join","token":"abc"}`,
		`{"type":"offer","sdp":"v=0","tracks":[{"id":"a","source":"camera"}]}`,
		`{"type":"answer","sdp":"v=0"}`,
		`{"type":"candidate","target":"publish","candidate":{"candidate":"c","sdpMid":"0","sdpMLineIndex":0}}`,
		`{"type":"leave"}`,
		`{"type":"state","audio_muted":true,"hand_raised":false}`,
		`{"type":"mute","participant":"p"}`,
		`{"type":"remove","participant":"p"}`,
		`{"type":"closing","reason":"r","deadline":"2026-01-01T00:00:00Z"}`,
		`{"type":"ending","closes_at":"2026-01-01T00:05:00.000Z","remaining_ms":300000}`,
		`{"type":"error","code":"x","message":"y"}`,
		`{"type":"joined","room":"r","you":{"id":"i"},"participants":[],"tracks":[]}`,
		`{"type":1}`, `null`, ``,
		`{"type":"offer","sdp":"garbage","tracks":[{"id":"` + strings.Repeat("x", MaxTrackID) + `","source":"screen"},{"id":"b","source":"audio"}]}`,
		`{"type":"offer","sdp":"v=0","tracks":[{"id":"` + strings.Repeat("x", MaxTrackID+1) + `","source":"camera"}]}`,
		`{"type":"offer","sdp":"v=0","tracks":[` + strings.Repeat(`{"id":"a","source":"audio"},`, MaxTracks) + `{"id":"a","source":"audio"}]}`,
		`{"type":"join","token":"` + strings.Repeat("t", MaxToken) + `"}`,
		`{"type":"candidate","target":"subscribe","candidate":{"candidate":"` + strings.Repeat("c", MaxCandidate) + `","usernameFragment":"` + strings.Repeat("u", MaxCandidateField) + `"}}`,
		`{"type":"offer","SDP":"v=0","Tracks":[{"ID":"a","Source":"camera"}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(b)
		if err != nil {
			return
		}
		// Whatever decodes keeps the limits, whatever the JSON looked like.
		if err := checkLimits(m); err != nil {
			t.Fatalf("Decode(%q) = %#v beyond the limits: %v", b, m, err)
		}
		// Whatever decodes encodes, and decodes again to the same value.
		out, err := Encode(m)
		if err != nil {
			t.Fatalf("Encode(%#v): %v", m, err)
		}
		again, err := Decode(out)
		if err != nil {
			t.Fatalf("re-decode %s: %v", out, err)
		}
		if again.MessageType() != m.MessageType() {
			t.Fatalf("type changed: %s -> %s", m.MessageType(), again.MessageType())
		}
	})
}

// checkLimits restates the limits on what clients send, independently of
// validate, for the fuzz test.
func checkLimits(m Message) error {
	switch v := m.(type) {
	case Join:
		if v.Token == "" || len(v.Token) > MaxToken {
			return fmt.Errorf("token of %d bytes", len(v.Token))
		}
	case Offer:
		if v.SDP == "" || len(v.SDP) > MaxSDPSize || len(v.Tracks) > MaxTracks {
			return fmt.Errorf("sdp of %d bytes, %d tracks", len(v.SDP), len(v.Tracks))
		}
		for _, tr := range v.Tracks {
			if tr.ID == "" || len(tr.ID) > MaxTrackID || !ValidSource(tr.Source) {
				return fmt.Errorf("track %q source %q", tr.ID, tr.Source)
			}
		}
	case Answer:
		if v.SDP == "" || len(v.SDP) > MaxSDPSize {
			return fmt.Errorf("sdp of %d bytes", len(v.SDP))
		}
	case State:
		if v.AudioMuted == nil && v.VideoMuted == nil && v.HandRaised == nil {
			return errors.New("empty state")
		}
	case Mute:
		if v.Participant == "" || len(v.Participant) > MaxParticipantID {
			return fmt.Errorf("participant of %d bytes", len(v.Participant))
		}
	case Remove:
		if v.Participant == "" || len(v.Participant) > MaxParticipantID {
			return fmt.Errorf("participant of %d bytes", len(v.Participant))
		}
	case Candidate:
		c := v.Candidate
		if v.Target != TargetPublish && v.Target != TargetSubscribe || len(c.Candidate) > MaxCandidate ||
			c.SDPMid != nil && len(*c.SDPMid) > MaxCandidateField ||
			c.UsernameFragment != nil && len(*c.UsernameFragment) > MaxCandidateField {
			return fmt.Errorf("candidate %+v", v)
		}
	}
	return nil
}

func TestTimesInMilliseconds(t *testing.T) {
	at := time.Date(2026, 11, 24, 11, 0, 0, 123456789, time.FixedZone("CET", 3600))
	for _, tc := range []struct {
		m    Message
		want string
	}{
		{Ending{ClosesAt: at, RemainingMS: 60000}, `{"type":"ending","closes_at":"2026-11-24T10:00:00.123Z","remaining_ms":60000}`},
		{Closing{Reason: "r", Deadline: at}, `{"type":"closing","reason":"r","deadline":"2026-11-24T10:00:00.123Z"}`},
	} {
		b, err := Encode(tc.m)
		if err != nil || string(b) != tc.want {
			t.Errorf("Encode = %s, %v; want %s", b, err, tc.want)
		}
	}
	b, err := json.Marshal(ChatMessage{From: "p", Name: "Ada", Text: "hi", At: at})
	if want := `{"from":"p","name":"Ada","text":"hi","at":"2026-11-24T10:00:00.123Z"}`; err != nil || string(b) != want {
		t.Errorf("chat = %s, %v; want %s", b, err, want)
	}
	var back ChatMessage
	if err := json.Unmarshal(b, &back); err != nil || !back.At.Equal(at.Truncate(time.Millisecond)) {
		t.Errorf("chat decodes to %v, %v", back.At, err)
	}
}

func TestNewEnding(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		closes time.Time
		want   int64
	}{
		{now.Add(5 * time.Minute), 300000},
		{now.Add(1500 * time.Microsecond), 1},
		{now, 0},
		{now.Add(-time.Second), 0},
	} {
		if got := NewEnding(tc.closes, now).RemainingMS; got != tc.want {
			t.Errorf("closes in %s: remaining_ms %d, want %d", tc.closes.Sub(now), got, tc.want)
		}
	}
}
