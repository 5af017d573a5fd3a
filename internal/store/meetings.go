package store

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// ListOptions selects a page of the meetings a user created or takes part in.
type ListOptions struct {
	// Keyword keeps meetings whose name contains it (case-insensitive on
	// MySQL's default collation and on ASCII with SQLite).
	Keyword string
	Offset  int
	Limit   int
}

// CreateMeeting stores a meeting and its participants in one transaction.
// The creator takes part without a room_user row.
func (s *Store) CreateMeeting(ctx context.Context, m *Meeting, participantIDs []uint64) error {
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Create(m).Error; err != nil {
			if errors.Is(err, gorm.ErrDuplicatedKey) {
				return fmt.Errorf("meeting %s: %w", m.Identity, ErrConflict)
			}
			return fmt.Errorf("create meeting: %w", err)
		}
		return addMembers(tx, m.ID, m.CreatorID, participantIDs)
	})
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

// Meeting returns the meeting with that identity if userID may see it
// (creator or participant): ErrNotFound when there is none, ErrForbidden
// when it belongs to others.
func (s *Store) Meeting(ctx context.Context, identity string, userID uint64) (Meeting, error) {
	m, err := meetingByIdentity(s.db.WithContext(ctx), identity)
	if err != nil {
		return Meeting{}, err
	}
	if m.CreatorID == userID {
		return m, nil
	}
	var n int64
	if err := s.db.WithContext(ctx).Model(&Member{}).Where("rid = ? AND uid = ?", m.ID, userID).Count(&n).Error; err != nil {
		return Meeting{}, fmt.Errorf("check participant: %w", err)
	}
	if n == 0 {
		return Meeting{}, fmt.Errorf("meeting %s: %w", identity, ErrForbidden)
	}
	return m, nil
}

func meetingByIdentity(db *gorm.DB, identity string) (Meeting, error) {
	var m Meeting
	err := db.Where("identity = ?", identity).Take(&m).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return Meeting{}, fmt.Errorf("meeting %s: %w", identity, ErrNotFound)
	}
	if err != nil {
		return Meeting{}, fmt.Errorf("find meeting: %w", err)
	}
	return m, nil
}

// ownedMeeting loads a meeting that userID created, inside tx.
func ownedMeeting(tx *gorm.DB, identity string, userID uint64) (Meeting, error) {
	m, err := meetingByIdentity(tx, identity)
	if err != nil {
		return Meeting{}, err
	}
	if m.CreatorID != userID {
		return Meeting{}, fmt.Errorf("meeting %s is not yours: %w", identity, ErrForbidden)
	}
	return m, nil
}

// ListMeetings returns a page of the meetings userID created or takes part
// in, newest beginning first, and how many there are in all.
func (s *Store) ListMeetings(ctx context.Context, userID uint64, opt ListOptions) ([]Meeting, int64, error) {
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
	var list []Meeting
	if count > int64(opt.Offset) {
		if err := q.Order("begin_at DESC, id DESC").Offset(opt.Offset).Limit(opt.Limit).Find(&list).Error; err != nil {
			return nil, 0, fmt.Errorf("list meetings: %w", err)
		}
	}
	return list, count, nil
}

func escapeLike(s string) string {
	return strings.NewReplacer("!", "!!", "%", "!%", "_", "!_").Replace(s)
}

// UpdateMeeting applies change to a meeting that userID created and saves
// it. change sees the current row and may refuse it with an error, which is
// returned as it is. The row is locked from read to write, so concurrent
// updates apply one after another and none is lost.
func (s *Store) UpdateMeeting(ctx context.Context, identity string, userID uint64, change func(*Meeting) error) (Meeting, error) {
	var saved Meeting
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		m, err := ownedMeeting(s.forUpdate(tx), identity, userID)
		if err != nil {
			return err
		}
		if err := change(&m); err != nil {
			return err
		}
		err = tx.Model(&m).Select("name", "begin_at", "end_at", "updated_at").Updates(&m).Error
		if err != nil {
			return fmt.Errorf("update meeting: %w", err)
		}
		saved = m
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

// DeleteMeeting removes a meeting that userID created, with its participants.
func (s *Store) DeleteMeeting(ctx context.Context, identity string, userID uint64) error {
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		m, err := ownedMeeting(tx, identity, userID)
		if err != nil {
			return err
		}
		if err := tx.Unscoped().Where("rid = ?", m.ID).Delete(&Member{}).Error; err != nil {
			return fmt.Errorf("delete participants: %w", err)
		}
		if err := tx.Delete(&m).Error; err != nil {
			return fmt.Errorf("delete meeting: %w", err)
		}
		return nil
	})
}

// Participants returns the users taking part in meeting m, creator first.
func (s *Store) Participants(ctx context.Context, m Meeting) ([]User, error) {
	var users []User
	err := s.db.WithContext(ctx).
		Where("id = ? OR id IN (?)", m.CreatorID, s.db.Model(&Member{}).Select("uid").Where("rid = ?", m.ID)).
		Order("username").Find(&users).Error
	if err != nil {
		return nil, fmt.Errorf("list participants: %w", err)
	}
	for i, u := range users {
		if u.ID == m.CreatorID && i > 0 {
			copy(users[1:i+1], users[:i])
			users[0] = u
		}
	}
	return users, nil
}

// AddParticipants adds the named users to a meeting that userID created.
// Unknown names are ErrNotFound and add nobody.
func (s *Store) AddParticipants(ctx context.Context, identity string, userID uint64, usernames []string) error {
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		m, err := ownedMeeting(tx, identity, userID)
		if err != nil {
			return err
		}
		ids, err := userIDs(tx, usernames)
		if err != nil {
			return err
		}
		return addMembers(tx, m.ID, m.CreatorID, ids)
	})
}

// RemoveParticipant takes the named user out of a meeting that userID created.
func (s *Store) RemoveParticipant(ctx context.Context, identity string, userID uint64, username string) error {
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		m, err := ownedMeeting(tx, identity, userID)
		if err != nil {
			return err
		}
		ids, err := userIDs(tx, []string{username})
		if err != nil {
			return err
		}
		res := tx.Unscoped().Where("rid = ? AND uid = ?", m.ID, ids[0]).Delete(&Member{})
		if res.Error != nil {
			return fmt.Errorf("remove participant: %w", res.Error)
		}
		if res.RowsAffected == 0 {
			return fmt.Errorf("%s does not take part in meeting %s: %w", username, identity, ErrNotFound)
		}
		return nil
	})
}

// UserIDs resolves usernames to ids; any unknown name is ErrNotFound.
func (s *Store) UserIDs(ctx context.Context, usernames []string) ([]uint64, error) {
	return userIDs(s.db.WithContext(ctx), usernames)
}

func userIDs(db *gorm.DB, usernames []string) ([]uint64, error) {
	if len(usernames) == 0 {
		return nil, nil
	}
	var users []User
	if err := db.Where("username IN ?", usernames).Find(&users).Error; err != nil {
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
