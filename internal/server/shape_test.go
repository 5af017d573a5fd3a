package server

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// The edges of a meeting's shape through REST, on both databases: the
// same limits as the Meeting resource's schema (test/shape checks the two
// against each other with a real API server).
func TestMeetingShapeEdges(t *testing.T) {
	forEachDialect(t, func(t *testing.T, h *harness) {
		alice := h.user("alice")
		long := strings.Repeat("u", 100)
		h.expect(h.do("POST", "/user/register", "", credentials{long, "password-long"}), 200, "")
		h.user("bob")
		h.user("carol")
		h.user("dave")
		begin := h.clock().Add(time.Hour)
		body := func(change map[string]any) map[string]any {
			b := map[string]any{"name": "edge", "begin_at": ms(begin), "end_at": ms(begin.Add(time.Hour))}
			for k, v := range change {
				b[k] = v
			}
			return b
		}
		create := func(change map[string]any) reply { return h.do("POST", "/auth/meeting/create", alice, body(change)) }
		id64 := strings.Repeat("a", 63) + "z"
		for _, c := range []struct {
			name   string
			change map[string]any
			status int
			msg    string
		}{
			{"identity of 64", map[string]any{"identity": id64}, 200, ""},
			{"identity of 65", map[string]any{"identity": strings.Repeat("b", 65)}, 400, "identity must be 1 to 64 characters"},
			{"identity in capitals (lower-cased)", map[string]any{"identity": "Team.Room_1"}, 200, ""},
			{"identity with a slash", map[string]any{"identity": "team/room"}, 400, "identity must be"},
			{"identity starting with '-'", map[string]any{"identity": "-room"}, 400, "identity must be"},
			{"name of 200", map[string]any{"name": strings.Repeat("名", 200)}, 200, ""},
			{"name of 201", map[string]any{"name": strings.Repeat("名", 201)}, 400, "has 201 characters; at most 200"},
			{"username of 100", map[string]any{"participants": []string{long}}, 200, ""},
			{"username of 101", map[string]any{"participants": []string{long + "u"}}, 400, "not a valid username"},
			{"max_participants 1000", map[string]any{"max_participants": 1000}, 200, ""},
			{"max_participants 1001", map[string]any{"max_participants": 1001}, 400, "max_participants is 1001; it must be from 1 to 1000"},
			{"max_participants 0", map[string]any{"max_participants": 0}, 400, "from 1 to 1000"},
			{"participants = max_participants", map[string]any{"max_participants": 2, "participants": []string{"bob", "carol", "alice"}}, 200, ""},
			{"participants = max_participants + 1", map[string]any{"max_participants": 2, "participants": []string{"bob", "carol", "dave"}}, 400,
				"would have 3 invited participants (the creator not counted) but its max_participants is 2"},
		} {
			t.Run(c.name, func(t *testing.T) { h.expect(create(c.change), c.status, c.msg) })
		}
		var d detailReply
		h.decode(h.do("GET", "/auth/meeting/get?identity="+strings.ToUpper(id64), alice, nil), &d)
		if d.Identity != id64 || d.MaxParticipants != 50 {
			t.Errorf("64-character identity: %+v", d.meetingReply)
		}
		h.decode(h.do("GET", "/auth/meeting/get?identity=team.room_1", alice, nil), &d)
		if d.Identity != "team.room_1" {
			t.Errorf("identity given in capitals: %q", d.Identity)
		}
		// The meeting list carries max_participants.
		var l listReply
		h.decode(h.do("GET", "/auth/meeting/list?size=100", alice, nil), &l)
		limits := map[int]int{}
		for _, m := range l.List {
			limits[m.MaxParticipants]++
		}
		if l.Count != 6 || limits[50] != 4 || limits[1000] != 1 || limits[2] != 1 {
			t.Errorf("list: %d meetings, max_participants %v", l.Count, limits)
		}

		// Invitations and edits keep within max_participants.
		small := h.create(alice, body(map[string]any{"max_participants": 2, "participants": []string{"bob"}}))
		if small.MaxParticipants != 2 {
			t.Fatalf("created %+v", small)
		}
		members := func(names ...string) reply {
			return h.do("POST", "/auth/meeting/members", alice, membersInput{small.Identity, names})
		}
		h.expect(members("carol", "dave"), 400, "would have 3 invited participants (the creator not counted) but its max_participants is 2")
		h.expect(members("carol"), 200, "")
		edit := func(change map[string]any) reply {
			change["identity"] = small.Identity
			return h.do("PUT", "/auth/meeting/edit", alice, change)
		}
		h.expect(edit(map[string]any{"max_participants": 1}), 400, "would have 2 invited participants (the creator not counted) but its max_participants is 1")
		h.expect(edit(map[string]any{"max_participants": 1001}), 400, "from 1 to 1000")
		r := edit(map[string]any{"max_participants": 3})
		h.expect(r, 200, "")
		var e meetingReply
		h.decode(r, &e)
		if e.MaxParticipants != 3 {
			t.Errorf("edit reply: %+v", e)
		}
		h.expect(members("dave"), 200, "")
		h.expect(edit(map[string]any{"max_participants": 2}), 400, "would have 3 invited participants")
		h.expect(edit(map[string]any{"name": strings.Repeat("é", 200)}), 200, "")
		h.decode(h.do("GET", "/auth/meeting/get?identity="+small.Identity, alice, nil), &d)
		if d.MaxParticipants != 3 || len(d.Participants) != 4 || len([]rune(d.Name)) != 200 {
			t.Errorf("after the edits: %+v with %d participants", d.meetingReply, len(d.Participants))
		}
		// One request invites at most 1,000.
		many := make([]string, 1001)
		for i := range many {
			many[i] = fmt.Sprintf("user%d", i)
		}
		h.expect(members(many...), 400, "at most 1000 participants per request")
	})
}
