package sfu

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"meeting.dev/meeting/media/signal"
)

// ErrRoomFull is returned when a room already holds its maximum.
var ErrRoomFull = errors.New("room is full")

// Room is one meeting: its participants and their published tracks. Its
// lock guards membership and the participants' state; media never takes it.
// Messages that describe a participant are sent under it, so that everyone
// learns of state changes in the order they happened.
type Room struct {
	id string
	m  *metrics

	mu           sync.Mutex
	participants map[string]*participant
	order        []string // participant ids in join order
	tracks       map[string]*publishedTrack
	closesAt     time.Time // set by a warning: when the room closes

	chatMu  sync.Mutex // orders chat: history, then live messages, per participant
	history [][]byte   // the last ChatHistory messages, oldest first
}

func newRoom(id string, m *metrics) *Room {
	return &Room{id: id, m: m,
		participants: map[string]*participant{}, tracks: map[string]*publishedTrack{}}
}

// ID is the meeting identity.
func (r *Room) ID() string { return r.id }

// add admits p unless the room holds max participants already and sends it
// joined (who and what is there) and, once the room was warned, ending;
// under the room's lock, so that nothing about the room reaches p before
// joined. It returns the room's tracks.
func (r *Room) add(p *participant, max int, now func() time.Time) ([]*publishedTrack, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.participants) >= max {
		return nil, ErrRoomFull
	}
	j := signal.Joined{Room: r.id, You: p.describeLocked(), Participants: make([]signal.Participant, 0, len(r.order)),
		Tracks: make([]signal.Track, 0, len(r.tracks))}
	for _, o := range r.listLocked() {
		j.Participants = append(j.Participants, o.describeLocked())
	}
	tracks := make([]*publishedTrack, 0, len(r.tracks))
	for _, t := range r.tracks {
		tracks = append(tracks, t)
		j.Tracks = append(j.Tracks, t.info)
	}
	r.participants[p.info.ID] = p
	r.order = append(r.order, p.info.ID)
	p.send(j)
	if !r.closesAt.IsZero() {
		p.send(signal.NewEnding(r.closesAt, now()))
	}
	return tracks, nil
}

// warn records when the room closes and returns who is there to tell.
func (r *Room) warn(closesAt time.Time) []*participant {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closesAt = closesAt
	return r.listLocked()
}

// remove takes p out; it returns the others and whether the room is now empty.
func (r *Room) remove(p *participant) ([]*participant, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.participants[p.info.ID]; ok {
		delete(r.participants, p.info.ID)
		for i, id := range r.order {
			if id == p.info.ID {
				r.order = append(r.order[:i:i], r.order[i+1:]...)
				break
			}
		}
	}
	return r.listLocked(), len(r.participants) == 0
}

func (r *Room) listLocked() []*participant {
	ps := make([]*participant, 0, len(r.order))
	for _, id := range r.order {
		ps = append(ps, r.participants[id])
	}
	return ps
}

func (r *Room) list() []*participant {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.listLocked()
}

func (r *Room) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.participants)
}

// publish adds t and subscribes everyone but its publisher to it.
func (r *Room) publish(t *publishedTrack) {
	r.mu.Lock()
	r.tracks[t.info.ID] = t
	ps := r.listLocked()
	r.mu.Unlock()
	r.m.tracks.Inc()
	for _, p := range ps {
		if p == t.publisher {
			continue
		}
		p.send(signal.TrackPublished{Track: t.info})
		p.subscribe(t)
	}
}

// unpublish removes t from the room and from every subscriber; it is a
// no-op the second time.
func (r *Room) unpublish(t *publishedTrack) {
	if !t.end() {
		return
	}
	r.mu.Lock()
	delete(r.tracks, t.info.ID)
	ps := r.listLocked()
	r.mu.Unlock()
	r.m.tracks.Dec()
	for _, p := range ps {
		if p == t.publisher {
			continue
		}
		p.send(signal.TrackUnpublished{Track: t.info}) // before the offer that removes it
		p.unsubscribe(t)
	}
}

// ChatHistory is how many of a room's last chat messages a participant
// gets when its chat channel opens.
const ChatHistory = 100

// chat relays text from p to everyone whose chat channel is open, p
// included, and keeps it in the room's history.
func (r *Room) chat(from *participant, text string, at time.Time) {
	b, err := json.Marshal(signal.ChatMessage{From: from.info.ID, Name: from.info.Name, Text: text, At: at})
	if err != nil {
		return
	}
	r.m.chat.Inc()
	r.chatMu.Lock()
	defer r.chatMu.Unlock()
	r.history = appendHistory(r.history, b)
	for _, p := range r.list() {
		if p.chatLive {
			p.sendChat(b)
		}
	}
}

// openChat sends p the room's chat history and then lets new messages
// reach it, in that order.
func (r *Room) openChat(p *participant) {
	r.chatMu.Lock()
	defer r.chatMu.Unlock()
	for _, b := range r.history {
		p.sendChat(b)
	}
	p.chatLive = true
}

// chatOpen reports whether p gets the room's chat messages.
func (r *Room) chatOpen(p *participant) bool {
	r.chatMu.Lock()
	defer r.chatMu.Unlock()
	return p.chatLive
}

// appendHistory appends b to h, dropping the oldest beyond ChatHistory.
func appendHistory(h [][]byte, b []byte) [][]byte {
	if len(h) >= ChatHistory {
		h = append(h[:0:0], h[len(h)-ChatHistory+1:]...)
	}
	return append(h, b)
}

// announce sends everyone but skip the message mk makes of about as it is
// now (participant_joined, participant_left).
func (r *Room) announce(about, skip *participant, mk func(signal.Participant) signal.Message) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := mk(about.describeLocked())
	for _, p := range r.listLocked() {
		if p != skip {
			p.send(m)
		}
	}
}

// updatedLocked tells everyone, p included, p's new state; the caller
// holds r.mu.
func (r *Room) updatedLocked(p *participant) {
	m := signal.ParticipantUpdated{Participant: p.describeLocked()}
	for _, o := range r.listLocked() {
		o.send(m)
	}
}

// setState applies the fields st gives to p's state and tells everyone.
func (r *Room) setState(p *participant, st signal.State) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.participants[p.info.ID] != p {
		return // leaving
	}
	if st.AudioMuted != nil {
		p.setAudioMutedLocked(*st.AudioMuted)
	}
	if st.VideoMuted != nil {
		p.state.videoMuted = *st.VideoMuted
	}
	if st.HandRaised != nil {
		p.state.handRaised = *st.HandRaised
	}
	r.updatedLocked(p)
}

// mute mutes participant id's audio for host: the target gets muted, and
// everyone its new state. A host cannot be muted (errHostTarget).
func (r *Room) mute(host *participant, id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	t := r.participants[id]
	switch {
	case t == nil:
		return fmt.Errorf("%w: %.64q", errNoParticipant, id)
	case t.info.Host:
		return errHostTarget
	}
	t.setAudioMutedLocked(true)
	t.send(signal.Muted{By: host.describeLocked()})
	r.updatedLocked(t)
	return nil
}

// userOf returns the user of participant id, unless it is a host.
func (r *Room) userOf(id string) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	t := r.participants[id]
	switch {
	case t == nil:
		return "", fmt.Errorf("%w: %.64q", errNoParticipant, id)
	case t.info.Host:
		return "", errHostTarget
	}
	return t.info.User, nil
}

// connectionsOf returns the participants of user.
func (r *Room) connectionsOf(user string) []*participant {
	r.mu.Lock()
	defer r.mu.Unlock()
	var ps []*participant
	for _, p := range r.listLocked() {
		if p.info.User == user {
			ps = append(ps, p)
		}
	}
	return ps
}
