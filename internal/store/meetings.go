package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"meeting.dev/meeting/internal/meeting"
)

// The store keeps meetings for the service; it applies no user scoping.
var _ meeting.Store = (*Store)(nil)

// CreateMeeting stores a meeting and its participants in one transaction,
// filling in m's ID, CreatedAt and UpdatedAt. The creator takes part
// without a room_user row. Identities are stored and compared in lower
// case; a deleted meeting's identity may be used again.
func (s *Store) CreateMeeting(ctx context.Context, m *meeting.Meeting, participantIDs []uint64) error {
	m.Identity = strings.ToLower(m.Identity)
	row := meetingRow(*m)
	err := s.writeTx(ctx, func(tx *gorm.DB) error {
		if err := purgeDeleted(tx, row.Identity); err != nil {
			return err
		}
		if err := tx.Create(&row).Error; err != nil {
			if errors.Is(err, gorm.ErrDuplicatedKey) {
				return fmt.Errorf("meeting %s: %w", m.Identity, ErrConflict)
			}
			return fmt.Errorf("create meeting: %w", err)
		}
		if err := s.enqueue(tx, row.Identity, OpApply); err != nil {
			return err
		}
		return addMembers(tx, row.ID, row.CreatorID, participantIDs)
	})
	if err != nil {
		return err
	}
	*m = meetingOut(row)
	return nil
}

// purgeDeleted removes the soft-deleted row of identity, which would hold
// the unique identity against a new meeting (its participants went with
// the delete).
func purgeDeleted(tx *gorm.DB, identity string) error {
	err := tx.Unscoped().Where("identity = ? AND deleted_at IS NOT NULL", identity).Delete(&Meeting{}).Error
	if err != nil {
		return fmt.Errorf("purge deleted meeting %s: %w", identity, err)
	}
	return nil
}

// checkInvited refuses, with a *meeting.TooManyParticipantsError, a
// meeting row whose participants outnumber its MaxParticipants. The count
// is a locking read on MySQL: it sees the latest committed rows whatever
// the transaction read before.
func (s *Store) checkInvited(tx *gorm.DB, m Meeting) error {
	var n int64
	if err := s.forUpdate(tx.Model(&Member{})).Where("rid = ?", m.ID).Count(&n).Error; err != nil {
		return fmt.Errorf("count participants: %w", err)
	}
	if n > int64(m.MaxParticipants) {
		return &meeting.TooManyParticipantsError{Identity: m.Identity, Invited: int(n), Max: m.MaxParticipants}
	}
	return nil
}

func addMembers(tx *gorm.DB, meetingID, creatorID uint64, userIDs []uint64) error {
	var rows []Member
	for _, id := range userIDs {
		if id != creatorID {
			rows = append(rows, Member{MeetingID: meetingID, UserID: id})
		}
	}
	if len(rows) == 0 {
		return nil
	}
	if err := tx.Clauses(clause.OnConflict{DoNothing: true}).Create(&rows).Error; err != nil {
		return fmt.Errorf("add participants: %w", err)
	}
	return nil
}

// Meeting returns the meeting with that identity, or ErrNotFound.
func (s *Store) Meeting(ctx context.Context, identity string) (meeting.Meeting, error) {
	row, err := meetingByIdentity(s.db.WithContext(ctx), identity)
	if err != nil {
		return meeting.Meeting{}, err
	}
	return meetingOut(row), nil
}

func meetingByIdentity(db *gorm.DB, identity string) (Meeting, error) {
	var m Meeting
	err := db.Where("identity = ?", strings.ToLower(identity)).Take(&m).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return Meeting{}, fmt.Errorf("meeting %s: %w", identity, ErrNotFound)
	}
	if err != nil {
		return Meeting{}, fmt.Errorf("find meeting: %w", err)
	}
	return m, nil
}

// IsParticipant reports whether userID was invited to the meeting (the
// creator has no participant row).
func (s *Store) IsParticipant(ctx context.Context, meetingID, userID uint64) (bool, error) {
	var n int64
	if err := s.db.WithContext(ctx).Model(&Member{}).Where("rid = ? AND uid = ?", meetingID, userID).Count(&n).Error; err != nil {
		return false, fmt.Errorf("check participant: %w", err)
	}
	return n > 0, nil
}

// ListMeetings returns a page of the meetings userID created or takes part
// in, newest beginning first, and how many there are in all. The keyword
// matches case-insensitively on MySQL's default collation and on ASCII
// with SQLite.
func (s *Store) ListMeetings(ctx context.Context, userID uint64, opt meeting.ListOptions) ([]meeting.Meeting, int64, error) {
	q := s.db.WithContext(ctx).Model(&Meeting{}).
		Where("create_id = ? OR id IN (?)", userID,
			s.db.Model(&Member{}).Select("rid").Where("uid = ?", userID))
	if opt.Keyword != "" {
		q = q.Where("name LIKE ? ESCAPE '!'", "%"+escapeLike(opt.Keyword)+"%")
	}
	var count int64
	if err := q.Count(&count).Error; err != nil {
		return nil, 0, fmt.Errorf("count meetings: %w", err)
	}
	if count <= int64(opt.Offset) {
		return []meeting.Meeting{}, count, nil
	}
	// Scanned by hand: gorm's reflective scan was a sixth of the API's CPU
	// time on this endpoint (BenchmarkList).
	rows, err := q.Select("id", "identity", "name", "begin_at", "end_at", "create_id", "max_participants", "created_at", "updated_at").
		Order("begin_at DESC, id DESC").Offset(opt.Offset).Limit(opt.Limit).Rows()
	if err != nil {
		return nil, 0, fmt.Errorf("list meetings: %w", err)
	}
	defer rows.Close()
	out := make([]meeting.Meeting, 0, max(0, min(opt.Limit, 100))) // the service bounds Limit; the store must not panic on it
	for rows.Next() {
		var m meeting.Meeting
		if err := rows.Scan(&m.ID, &m.Identity, &m.Name, &m.BeginAt, &m.EndAt, &m.CreatorID, &m.MaxParticipants, &m.CreatedAt, &m.UpdatedAt); err != nil {
			return nil, 0, fmt.Errorf("list meetings: %w", err)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("list meetings: %w", err)
	}
	return out, count, nil
}

func meetingsOut(rows []Meeting) []meeting.Meeting {
	out := make([]meeting.Meeting, len(rows))
	for i, r := range rows {
		out[i] = meetingOut(r)
	}
	return out
}

// MeetingsEndingAfter returns every meeting whose end is after t, earliest
// beginning first.
func (s *Store) MeetingsEndingAfter(ctx context.Context, t time.Time) ([]meeting.Meeting, error) {
	var rows []Meeting
	if err := s.db.WithContext(ctx).Where("end_at > ?", t.UTC()).Order("begin_at, id").Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("list meetings ending after %s: %w", t.Format(time.RFC3339), err)
	}
	return meetingsOut(rows), nil
}

func escapeLike(s string) string {
	return strings.NewReplacer("!", "!!", "%", "!%", "_", "!_").Replace(s)
}

// UpdateMeeting applies change to a meeting and saves its name, times and
// MaxParticipants. change sees the current row and may refuse it with an
// error, which is returned as it is and nothing is written; so is a
// *meeting.TooManyParticipantsError when MaxParticipants went below the
// number of participants. The row is locked from read to write (as
// AddParticipants locks it), so concurrent updates apply one after another
// and none is lost.
func (s *Store) UpdateMeeting(ctx context.Context, identity string, change func(*meeting.Meeting) error) (meeting.Meeting, error) {
	var saved meeting.Meeting
	err := s.writeTx(ctx, func(tx *gorm.DB) error {
		row, err := meetingByIdentity(s.forUpdate(tx), identity)
		if err != nil {
			return err
		}
		m := meetingOut(row)
		if err := change(&m); err != nil {
			return err
		}
		lowered := m.RoomLimit() < row.MaxParticipants
		row.Name, row.BeginAt, row.EndAt, row.MaxParticipants = m.Name, m.BeginAt, m.EndAt, m.RoomLimit()
		if lowered {
			if err := s.checkInvited(tx, row); err != nil {
				return err
			}
		}
		err = tx.Model(&row).Select("name", "begin_at", "end_at", "max_participants", "updated_at").Updates(&row).Error
		if err != nil {
			return fmt.Errorf("update meeting: %w", err)
		}
		if err := s.enqueue(tx, row.Identity, OpApply); err != nil {
			return err
		}
		saved = meetingOut(row)
		return nil
	})
	return saved, err
}

// forUpdate locks the rows tx reads until it ends. SQLite needs no lock:
// the store's single connection already runs transactions one at a time.
func (s *Store) forUpdate(tx *gorm.DB) *gorm.DB {
	if s.dialect == "mysql" {
		return tx.Clauses(clause.Locking{Strength: clause.LockingStrengthUpdate})
	}
	return tx
}

// DeleteMeeting removes a meeting with its participants, or ErrNotFound.
func (s *Store) DeleteMeeting(ctx context.Context, identity string) error {
	return s.writeTx(ctx, func(tx *gorm.DB) error {
		m, err := meetingByIdentity(tx, identity)
		if err != nil {
			return err
		}
		if err := tx.Unscoped().Where("rid = ?", m.ID).Delete(&Member{}).Error; err != nil {
			return fmt.Errorf("delete participants: %w", err)
		}
		if err := tx.Delete(&m).Error; err != nil {
			return fmt.Errorf("delete meeting: %w", err)
		}
		return s.enqueue(tx, m.Identity, OpDelete)
	})
}

// Participants returns the users taking part in meeting m, creator first,
// the others by name.
func (s *Store) Participants(ctx context.Context, m meeting.Meeting) ([]meeting.User, error) {
	var rows []User
	err := s.db.WithContext(ctx).
		Where("id = ? OR id IN (?)", m.CreatorID, s.db.Model(&Member{}).Select("uid").Where("rid = ?", m.ID)).
		Order("username").Find(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("list participants: %w", err)
	}
	users := make([]meeting.User, 0, len(rows))
	for _, r := range rows {
		u := accountOut(r).User()
		if u.ID == m.CreatorID {
			users = append([]meeting.User{u}, users...)
		} else {
			users = append(users, u)
		}
	}
	return users, nil
}

// AddParticipants adds users (by id) to a meeting; present ones stay, and
// the creator gets no row. It refuses, with a
// *meeting.TooManyParticipantsError and nothing written, to leave more
// participants than the meeting's MaxParticipants; the meeting's row is
// locked meanwhile, so concurrent invitations cannot pass the cap together.
func (s *Store) AddParticipants(ctx context.Context, meetingID uint64, userIDs []uint64) error {
	return s.writeTx(ctx, func(tx *gorm.DB) error {
		var m Meeting
		err := s.forUpdate(tx).Take(&m, meetingID).Error
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return fmt.Errorf("meeting %d: %w", meetingID, ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("find meeting: %w", err)
		}
		if err := s.enqueue(tx, m.Identity, OpApply); err != nil {
			return err
		}
		if err := addMembers(tx, m.ID, m.CreatorID, userIDs); err != nil {
			return err
		}
		return s.checkInvited(tx, m)
	})
}

// RemoveParticipant takes userID out of a meeting; ErrNotFound when the
// user does not take part.
func (s *Store) RemoveParticipant(ctx context.Context, meetingID, userID uint64) error {
	return s.writeTx(ctx, func(tx *gorm.DB) error {
		res := tx.Unscoped().Where("rid = ? AND uid = ?", meetingID, userID).Delete(&Member{})
		if res.Error != nil {
			return fmt.Errorf("remove participant: %w", res.Error)
		}
		if res.RowsAffected == 0 {
			return fmt.Errorf("user %d does not take part in meeting %d: %w", userID, meetingID, ErrNotFound)
		}
		return s.enqueueByID(tx, meetingID, OpApply)
	})
}

// UserIDs resolves usernames, in any letter case, to ids; any unknown name
// is ErrNotFound.
func (s *Store) UserIDs(ctx context.Context, usernames []string) ([]uint64, error) {
	return userIDs(s.db.WithContext(ctx), usernames)
}

func userIDs(db *gorm.DB, usernames []string) ([]uint64, error) {
	if len(usernames) == 0 {
		return nil, nil
	}
	lower := make([]string, len(usernames))
	for i, n := range usernames {
		lower[i] = strings.ToLower(n)
	}
	var users []User
	if err := db.Where("username IN ?", lower).Find(&users).Error; err != nil {
		return nil, fmt.Errorf("find users: %w", err)
	}
	byName := make(map[string]uint64, len(users))
	for _, u := range users {
		byName[strings.ToLower(u.Username)] = u.ID
	}
	ids := make([]uint64, 0, len(usernames))
	var missing []string
	for _, n := range usernames {
		id, ok := byName[strings.ToLower(n)]
		if !ok {
			missing = append(missing, n)
			continue
		}
		ids = append(ids, id)
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("no user named %s: %w", strings.Join(missing, ", "), ErrNotFound)
	}
	return ids, nil
}
