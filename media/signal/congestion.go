package signal

// TypeCongestion is the server's congestion feedback (docs/signaling.md,
// "Congestion feedback").
const TypeCongestion = "congestion"

// Congestion tells a subscriber that the server paused or resumed tracks
// it sends it because the subscriber falls behind (loses packets or
// receives fewer than it is sent).
type Congestion struct {
	Tracks []CongestedTrack `json:"tracks"`
}

// CongestedTrack is one track's state in a Congestion message.
type CongestedTrack struct {
	// Track is the track id, as in TrackPublished.
	Track string `json:"track"`
	// State is "paused" (nothing of the track is sent until it resumes) or
	// "resumed" (sent again from its next keyframe).
	State string `json:"state"`
	// Reason of a pause: "loss" (the receiver reports losing 10 % or more)
	// or "stalled" (it receives less than half of what it is sent).
	Reason string `json:"reason,omitempty"`
	// RetryMS is, for a pause, in how many milliseconds the server tries
	// again.
	RetryMS int64 `json:"retry_ms,omitempty"`
}

func (Congestion) MessageType() string { return TypeCongestion }
