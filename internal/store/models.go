// Package store keeps users, meetings and their participants in MySQL or
// SQLite through gorm. Its tables stay compatible with the seed project's DDL.
package store

import (
	"time"

	"gorm.io/gorm"

	"meeting.dev/meeting/internal/meeting"
)

// User is a row of user_basic.
type User struct {
	ID        uint64 `gorm:"primaryKey"`
	CreatedAt time.Time
	UpdatedAt time.Time
	DeletedAt gorm.DeletedAt `gorm:"index"`
	Username  string         `gorm:"size:100;not null;uniqueIndex:idx_user_basic_username"`
	// Password is a bcrypt hash; rows from the seed hold an md5 hex digest
	// until their first login re-hashes them.
	Password string `gorm:"size:255;not null"`
	// TokenGeneration counts password changes: API tokens carry the
	// generation they were issued at and older ones are refused. Rows from
	// before the column get 0, so their existing tokens stay valid.
	TokenGeneration uint64 `gorm:"column:token_generation;not null;default:0"`
	// SDP is a seed column that was never used; kept so old rows migrate as they are.
	SDP *string `gorm:"column:sdp;type:text"`
}

// TableName keeps the seed's table name.
func (User) TableName() string { return "user_basic" }

// Meeting is a row of room_basic.
type Meeting struct {
	ID        uint64 `gorm:"primaryKey"`
	CreatedAt time.Time
	UpdatedAt time.Time
	DeletedAt gorm.DeletedAt `gorm:"index"`
	// Identity is up to 64 characters (meeting.MaxIdentityLen) and Name up
	// to 200 (meeting.MaxNameRunes), as a Meeting resource's spec allows; the
	// seed's DDL had 36 and 100, which migrate widens.
	Identity  string    `gorm:"size:64;not null;uniqueIndex:idx_room_basic_identity"`
	Name      string    `gorm:"size:200;not null"`
	BeginAt   time.Time `gorm:"not null;index:idx_room_basic_begin_at"`
	EndAt     time.Time `gorm:"not null"`
	CreatorID uint64    `gorm:"column:create_id;not null;index:idx_room_basic_create_id"`
	// MaxParticipants: rows from before the column get the default, 50.
	MaxParticipants int `gorm:"column:max_participants;not null;default:50"`
}

// TableName keeps the seed's table name.
func (Meeting) TableName() string { return "room_basic" }

// Member is a row of room_user: user UserID takes part in meeting MeetingID.
// Rows are deleted outright (not soft-deleted) so that a member can be added
// again; DeletedAt stays for the seed's DDL.
type Member struct {
	ID        uint64 `gorm:"primaryKey"`
	CreatedAt time.Time
	UpdatedAt time.Time
	DeletedAt gorm.DeletedAt `gorm:"index"`
	MeetingID uint64         `gorm:"column:rid;not null;uniqueIndex:idx_room_user_rid_uid,priority:1"`
	UserID    uint64         `gorm:"column:uid;not null;uniqueIndex:idx_room_user_rid_uid,priority:2;index:idx_room_user_uid"`
}

// TableName keeps the seed's table name.
func (Member) TableName() string { return "room_user" }

// meetingOut converts a row into the service's type.
func meetingOut(r Meeting) meeting.Meeting {
	return meeting.Meeting{ID: r.ID, Identity: r.Identity, Name: r.Name, BeginAt: r.BeginAt, EndAt: r.EndAt,
		MaxParticipants: r.MaxParticipants, CreatorID: r.CreatorID, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt}
}

// meetingRow converts the service's type into a row.
func meetingRow(m meeting.Meeting) Meeting {
	return Meeting{ID: m.ID, Identity: m.Identity, Name: m.Name, BeginAt: m.BeginAt, EndAt: m.EndAt,
		MaxParticipants: m.RoomLimit(), CreatorID: m.CreatorID, CreatedAt: m.CreatedAt, UpdatedAt: m.UpdatedAt}
}

// accountOut converts a row into the service's type.
func accountOut(u User) meeting.Account {
	return meeting.Account{ID: u.ID, Username: u.Username, PasswordHash: u.Password,
		TokenGeneration: u.TokenGeneration, CreatedAt: u.CreatedAt}
}
