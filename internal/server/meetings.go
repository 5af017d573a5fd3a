package server

import (
	"strings"

	"github.com/gin-gonic/gin"

	"meeting.dev/meeting/internal/meeting"
)

// meetingReply is a meeting as the API shows it; times in milliseconds
// since the epoch, as the seed takes them. ParticipantsOnline is counted
// while the phase is Running or Ending and 0 otherwise.
type meetingReply struct {
	Identity           string `json:"identity"`
	Name               string `json:"name"`
	BeginAt            int64  `json:"begin_at"`
	EndAt              int64  `json:"end_at"`
	MaxParticipants    int    `json:"max_participants"`
	CreatorID          uint64 `json:"create_id"`
	CreatedAt          int64  `json:"created_at"`
	UpdatedAt          int64  `json:"updated_at"`
	Phase              string `json:"phase"`
	ParticipantsOnline int    `json:"participants_online"`
}

func meetingOut(v meeting.View) meetingReply {
	m := v.Meeting
	return meetingReply{Identity: m.Identity, Name: m.Name, BeginAt: millis(m.BeginAt), EndAt: millis(m.EndAt),
		MaxParticipants: m.RoomLimit(), CreatorID: m.CreatorID, CreatedAt: millis(m.CreatedAt), UpdatedAt: millis(m.UpdatedAt),
		Phase: string(v.Phase), ParticipantsOnline: v.ParticipantsOnline}
}

type listReply struct {
	List  []meetingReply `json:"list"`
	Count int64          `json:"count"`
}

// me is the caller as the meeting service knows it.
func me(c *gin.Context) meeting.User {
	id := caller(c)
	return meeting.User{ID: id.UserID, Username: id.Username}
}

func (a *API) listMeetings(c *gin.Context) {
	page, err := queryInt(c, "page", 1, 1<<20)
	if err != nil {
		a.failErr(c, err)
		return
	}
	size, err := queryInt(c, "size", defaultPageSize, meeting.MaxPageSize)
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
	if len([]rune(keyword)) > meeting.MaxNameRunes {
		a.failErr(c, badRequest("keyword is longer than a meeting name can be"))
		return
	}
	list, count, err := a.meetings.List(c.Request.Context(), me(c), meeting.ListOptions{
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
	return checkIdentity(c.Query("identity"))
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
	d, err := a.meetings.Get(c.Request.Context(), me(c), id)
	if err != nil {
		a.failErr(c, err)
		return
	}
	ok(c, detailReply{meetingReply: meetingOut(d.View), Participants: usersOut(d.Participants)})
}

func usersOut(users []meeting.User) []userReply {
	out := make([]userReply, len(users))
	for i, u := range users {
		out[i] = userOut(u)
	}
	return out
}

func (a *API) createMeeting(c *gin.Context) {
	in, err := parseCreate(c.Request.Body)
	if err != nil {
		a.failErr(c, err)
		return
	}
	v, err := a.meetings.Create(c.Request.Context(), me(c), in)
	if err != nil {
		a.failErr(c, err)
		return
	}
	ok(c, meetingOut(v))
}

func (a *API) editMeeting(c *gin.Context) {
	id, change, err := parseEdit(c.Request.Body)
	if err != nil {
		a.failErr(c, err)
		return
	}
	v, err := a.meetings.Edit(c.Request.Context(), me(c), id, change)
	if err != nil {
		a.failErr(c, err)
		return
	}
	ok(c, meetingOut(v))
}

func (a *API) deleteMeeting(c *gin.Context) {
	id, err := identityParam(c)
	if err != nil {
		a.failErr(c, err)
		return
	}
	if err := a.meetings.Delete(c.Request.Context(), me(c), id); err != nil {
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
	users, err := a.meetings.Members(c.Request.Context(), me(c), id)
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
	id, err := checkIdentity(in.Identity)
	if err != nil {
		a.failErr(c, err)
		return
	}
	names, err := checkUsernames(in.Usernames)
	if err != nil {
		a.failErr(c, err)
		return
	}
	users, err := a.meetings.AddMembers(c.Request.Context(), me(c), id, names)
	if err != nil {
		a.failErr(c, err)
		return
	}
	ok(c, usersOut(users))
}

func (a *API) removeMember(c *gin.Context) {
	id, err := identityParam(c)
	if err != nil {
		a.failErr(c, err)
		return
	}
	name := strings.ToLower(c.Query("username"))
	if err := checkUsername(name); err != nil {
		a.failErr(c, err)
		return
	}
	if err := a.meetings.RemoveMember(c.Request.Context(), me(c), id, name); err != nil {
		a.failErr(c, err)
		return
	}
	ok(c, nil)
}
