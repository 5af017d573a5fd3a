package server

import (
	"strings"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"meeting.dev/meeting/internal/store"
)

// meetingReply is a meeting as the API shows it; times in milliseconds
// since the epoch, as the seed takes them.
type meetingReply struct {
	Identity  string `json:"identity"`
	Name      string `json:"name"`
	BeginAt   int64  `json:"begin_at"`
	EndAt     int64  `json:"end_at"`
	CreatorID uint64 `json:"create_id"`
	CreatedAt int64  `json:"created_at"`
	UpdatedAt int64  `json:"updated_at"`
}

func meetingOut(m store.Meeting) meetingReply {
	return meetingReply{Identity: m.Identity, Name: m.Name, BeginAt: millis(m.BeginAt), EndAt: millis(m.EndAt),
		CreatorID: m.CreatorID, CreatedAt: millis(m.CreatedAt), UpdatedAt: millis(m.UpdatedAt)}
}

type listReply struct {
	List  []meetingReply `json:"list"`
	Count int64          `json:"count"`
}

func (a *API) listMeetings(c *gin.Context) {
	page, err := queryInt(c, "page", 1, 1<<20)
	if err != nil {
		a.failErr(c, err)
		return
	}
	size, err := queryInt(c, "size", defaultPageSize, maxPageSize)
	if err != nil {
		a.failErr(c, err)
		return
	}
	keyword := strings.TrimSpace(c.Query("keyword"))
	if name := strings.TrimSpace(c.Query("name")); name != "" {
		if keyword != "" && keyword != name {
			a.failErr(c, badRequest("give name or keyword, not both"))
			return
		}
		keyword = name
	}
	if len([]rune(keyword)) > maxNameRunes {
		a.failErr(c, badRequest("keyword is longer than a meeting name can be"))
		return
	}
	list, count, err := a.store.ListMeetings(c.Request.Context(), caller(c).UserID, store.ListOptions{
		Keyword: keyword, Offset: (page - 1) * size, Limit: size})
	if err != nil {
		a.failErr(c, err)
		return
	}
	out := listReply{List: make([]meetingReply, len(list)), Count: count}
	for i, m := range list {
		out.List[i] = meetingOut(m)
	}
	ok(c, out)
}

// identityParam reads and checks the identity query parameter.
func identityParam(c *gin.Context) (string, error) {
	id := c.Query("identity")
	return id, checkIdentity(id)
}

type detailReply struct {
	meetingReply
	Participants []userReply `json:"participants"`
}

func (a *API) getMeeting(c *gin.Context) {
	id, err := identityParam(c)
	if err != nil {
		a.failErr(c, err)
		return
	}
	m, users, err := a.meetingWithParticipants(c, id)
	if err != nil {
		a.failErr(c, err)
		return
	}
	ok(c, detailReply{meetingReply: meetingOut(m), Participants: usersOut(users)})
}

// meetingWithParticipants loads a meeting the caller may see and who takes part.
func (a *API) meetingWithParticipants(c *gin.Context, identity string) (store.Meeting, []store.User, error) {
	m, err := a.store.Meeting(c.Request.Context(), identity, caller(c).UserID)
	if err != nil {
		return m, nil, err
	}
	users, err := a.store.Participants(c.Request.Context(), m)
	return m, users, err
}

func usersOut(users []store.User) []userReply {
	out := make([]userReply, len(users))
	for i, u := range users {
		out[i] = userOut(u)
	}
	return out
}

func (a *API) createMeeting(c *gin.Context) {
	in, err := parseCreate(c.Request.Body, a.now())
	if err != nil {
		a.failErr(c, err)
		return
	}
	ids, err := a.store.UserIDs(c.Request.Context(), in.Participants)
	if err != nil {
		a.failErr(c, err)
		return
	}
	m := store.Meeting{Identity: uuid.NewString(), Name: in.Name, BeginAt: in.BeginAt, EndAt: in.EndAt,
		CreatorID: caller(c).UserID}
	if err := a.store.CreateMeeting(c.Request.Context(), &m, ids); err != nil {
		a.failErr(c, err)
		return
	}
	ok(c, meetingOut(m))
}

func (a *API) editMeeting(c *gin.Context) {
	in, err := parseEdit(c.Request.Body)
	if err != nil {
		a.failErr(c, err)
		return
	}
	now := a.now()
	m, err := a.store.UpdateMeeting(c.Request.Context(), in.Identity, caller(c).UserID, func(m *store.Meeting) error {
		if in.Name != nil {
			m.Name = *in.Name
		}
		if in.BeginAt == nil && in.EndAt == nil {
			return nil
		}
		if in.BeginAt != nil {
			m.BeginAt = *in.BeginAt
		}
		if in.EndAt != nil {
			m.EndAt = *in.EndAt
		}
		return checkWindow(m.BeginAt, m.EndAt, now)
	})
	if err != nil {
		a.failErr(c, err)
		return
	}
	ok(c, meetingOut(m))
}

func (a *API) deleteMeeting(c *gin.Context) {
	id, err := identityParam(c)
	if err != nil {
		a.failErr(c, err)
		return
	}
	if err := a.store.DeleteMeeting(c.Request.Context(), id, caller(c).UserID); err != nil {
		a.failErr(c, err)
		return
	}
	ok(c, nil)
}

func (a *API) listMembers(c *gin.Context) {
	id, err := identityParam(c)
	if err != nil {
		a.failErr(c, err)
		return
	}
	a.replyMembers(c, id)
}

// replyMembers answers with the participants of a meeting the caller may see.
func (a *API) replyMembers(c *gin.Context, identity string) {
	_, users, err := a.meetingWithParticipants(c, identity)
	if err != nil {
		a.failErr(c, err)
		return
	}
	ok(c, usersOut(users))
}

type membersInput struct {
	Identity  string   `json:"identity"`
	Usernames []string `json:"usernames"`
}

func (a *API) addMembers(c *gin.Context) {
	var in membersInput
	if err := decodeJSON(c.Request.Body, &in); err != nil {
		a.failErr(c, err)
		return
	}
	if err := checkIdentity(in.Identity); err != nil {
		a.failErr(c, err)
		return
	}
	if len(in.Usernames) == 0 {
		a.failErr(c, badRequest("usernames must name at least one user"))
		return
	}
	names, err := checkUsernames(in.Usernames)
	if err != nil {
		a.failErr(c, err)
		return
	}
	if err := a.store.AddParticipants(c.Request.Context(), in.Identity, caller(c).UserID, names); err != nil {
		a.failErr(c, err)
		return
	}
	a.replyMembers(c, in.Identity)
}

func (a *API) removeMember(c *gin.Context) {
	id, err := identityParam(c)
	if err != nil {
		a.failErr(c, err)
		return
	}
	name := c.Query("username")
	if err := checkUsername(name); err != nil {
		a.failErr(c, err)
		return
	}
	if err := a.store.RemoveParticipant(c.Request.Context(), id, caller(c).UserID, name); err != nil {
		a.failErr(c, err)
		return
	}
	ok(c, nil)
}
