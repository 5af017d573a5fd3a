package store

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"meeting.dev/meeting/internal/meeting"
)

// ErrPending: a REST change of the meeting waits in the outbox, so the row
// does not follow the cluster now (the change is applied to the cluster first).
var ErrPending = errors.New("an outbox entry is pending")

// ClusterRow is a row of meeting_cluster: what the cluster knows of one
// meeting identity. Only the sync writes it.
type ClusterRow struct {
	Identity string `gorm:"primaryKey;size:64"`
	// Name is the Meeting resource's name.
	Name string `gorm:"size:63;not null"`
	// UID is set once the Meeting has been seen in the cluster.
	UID             string `gorm:"size:64;not null;default:''"`
	ResourceVersion string `gorm:"size:64;not null;default:''"`
	Phase           string `gorm:"size:32;not null;default:''"`
	SignalURL       string `gorm:"size:512;not null;default:''"`
	// TURNURIs is a JSON array of strings.
	TURNURIs     string    `gorm:"column:turn_uris;type:text"`
	Ready        bool      `gorm:"not null;default:false"`
	ReadyReason  string    `gorm:"size:128;not null;default:''"`
	ReadyMessage string    `gorm:"size:1024;not null;default:''"`
	SyncedAt     time.Time `gorm:"not null"`
}

// TableName names the table.
func (ClusterRow) TableName() string { return "meeting_cluster" }

// SyncedMeeting is a meeting as the sync compares it with its resource: the
// row, its creator's and participants' usernames, and its meeting_cluster
// row (nil when the cluster has never known it).
type SyncedMeeting struct {
	Meeting meeting.Meeting
	Creator string
	// Participants are the invited users' names, sorted, creator excluded.
	Participants []string
	Cluster      *ClusterRow
}

// SyncMeeting returns the meeting with that identity for the sync, or
// ErrNotFound.
func (s *Store) SyncMeeting(ctx context.Context, identity string) (SyncedMeeting, error) {
	db := s.db.WithContext(ctx)
	row, err := meetingByIdentity(db, identity)
	if err != nil {
		return SyncedMeeting{}, err
	}
	out, err := syncedMeetings(db, []Meeting{row})
	if err != nil {
		return SyncedMeeting{}, err
	}
	return out[0], nil
}

// SyncMeetings returns every meeting for the resync.
func (s *Store) SyncMeetings(ctx context.Context) ([]SyncedMeeting, error) {
	db := s.db.WithContext(ctx)
	var rows []Meeting
	if err := db.Order("id").Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("list meetings: %w", err)
	}
	return syncedMeetings(db, rows)
}

func syncedMeetings(db *gorm.DB, rows []Meeting) ([]SyncedMeeting, error) {
	if len(rows) == 0 {
		return nil, nil
	}
	ids := make([]uint64, len(rows))
	idents := make([]string, len(rows))
	userIDs := map[uint64]bool{}
	for i, r := range rows {
		ids[i], idents[i] = r.ID, r.Identity
		userIDs[r.CreatorID] = true
	}
	var members []struct {
		RID      uint64
		Username string
	}
	// Batches keep the IN lists within the databases' limits.
	for start := 0; start < len(ids); start += 500 {
		end := min(start+500, len(ids))
		var part []struct {
			RID      uint64
			Username string
		}
		err := db.Table("room_user").Select("room_user.rid AS r_id, user_basic.username AS username").
			Joins("JOIN user_basic ON user_basic.id = room_user.uid AND user_basic.deleted_at IS NULL").
			Where("room_user.rid IN ?", ids[start:end]).Scan(&part).Error
		if err != nil {
			return nil, fmt.Errorf("list participants: %w", err)
		}
		members = append(members, part...)
	}
	creatorIDs := make([]uint64, 0, len(userIDs))
	for id := range userIDs {
		creatorIDs = append(creatorIDs, id)
	}
	names := map[uint64]string{}
	for start := 0; start < len(creatorIDs); start += 500 {
		var users []User
		if err := db.Select("id", "username").Where("id IN ?", creatorIDs[start:min(start+500, len(creatorIDs))]).Find(&users).Error; err != nil {
			return nil, fmt.Errorf("find creators: %w", err)
		}
		for _, u := range users {
			names[u.ID] = u.Username
		}
	}
	byMeeting := map[uint64][]string{}
	for _, m := range members {
		byMeeting[m.RID] = append(byMeeting[m.RID], m.Username)
	}
	clusterRows := map[string]*ClusterRow{}
	for start := 0; start < len(idents); start += 500 {
		var cs []ClusterRow
		if err := db.Where("identity IN ?", idents[start:min(start+500, len(idents))]).Find(&cs).Error; err != nil {
			return nil, fmt.Errorf("read meeting_cluster: %w", err)
		}
		for i := range cs {
			clusterRows[cs[i].Identity] = &cs[i]
		}
	}
	out := make([]SyncedMeeting, len(rows))
	for i, r := range rows {
		ps := byMeeting[r.ID]
		sort.Strings(ps)
		out[i] = SyncedMeeting{Meeting: meetingOut(r), Creator: names[r.CreatorID], Participants: ps, Cluster: clusterRows[r.Identity]}
	}
	return out, nil
}

// ClusterRows returns every meeting_cluster row by identity.
func (s *Store) ClusterRows(ctx context.Context) (map[string]ClusterRow, error) {
	var cs []ClusterRow
	if err := s.db.WithContext(ctx).Find(&cs).Error; err != nil {
		return nil, fmt.Errorf("read meeting_cluster: %w", err)
	}
	out := make(map[string]ClusterRow, len(cs))
	for _, c := range cs {
		out[c.Identity] = c
	}
	return out, nil
}

// ClusterRowOf returns the meeting_cluster row of identity, or ErrNotFound.
func (s *Store) ClusterRowOf(ctx context.Context, identity string) (ClusterRow, error) {
	var c ClusterRow
	err := s.db.WithContext(ctx).Where("identity = ?", strings.ToLower(identity)).Take(&c).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return ClusterRow{}, fmt.Errorf("meeting_cluster %s: %w", identity, ErrNotFound)
	}
	if err != nil {
		return ClusterRow{}, fmt.Errorf("read meeting_cluster: %w", err)
	}
	return c, nil
}

// SetClusterRow creates or replaces the meeting_cluster row of c.Identity.
func (s *Store) SetClusterRow(ctx context.Context, c ClusterRow) error {
	c.Identity = strings.ToLower(c.Identity)
	if err := s.db.WithContext(ctx).Clauses(clause.OnConflict{UpdateAll: true}).Create(&c).Error; err != nil {
		return fmt.Errorf("write meeting_cluster %s: %w", c.Identity, err)
	}
	return nil
}

// DeleteClusterRow removes the meeting_cluster row of identity, if any.
func (s *Store) DeleteClusterRow(ctx context.Context, identity string) error {
	if err := s.db.WithContext(ctx).Where("identity = ?", strings.ToLower(identity)).Delete(&ClusterRow{}).Error; err != nil {
		return fmt.Errorf("delete meeting_cluster %s: %w", identity, err)
	}
	return nil
}

// UsersByName resolves usernames in any letter case; the map holds the
// known ones by lower-cased name. Unknown names are simply absent.
func (s *Store) UsersByName(ctx context.Context, usernames []string) (map[string]uint64, error) {
	out := map[string]uint64{}
	if len(usernames) == 0 {
		return out, nil
	}
	lower := make([]string, len(usernames))
	for i, n := range usernames {
		lower[i] = strings.ToLower(n)
	}
	for start := 0; start < len(lower); start += 500 {
		var users []User
		if err := s.db.WithContext(ctx).Select("id", "username").Where("username IN ?", lower[start:min(start+500, len(lower))]).Find(&users).Error; err != nil {
			return nil, fmt.Errorf("find users: %w", err)
		}
		for _, u := range users {
			out[strings.ToLower(u.Username)] = u.ID
		}
	}
	return out, nil
}

// FromCluster is a meeting as its resource says, users resolved to ids.
type FromCluster struct {
	// Meeting: Identity, Name, BeginAt, EndAt, CreatorID and MaxParticipants are written.
	Meeting        meeting.Meeting
	ParticipantIDs []uint64
	// Cluster is written as the meeting's meeting_cluster row.
	Cluster ClusterRow
}

// ApplyFromCluster makes the row of in.Meeting.Identity equal to the
// resource: it creates the row (or brings back a soft-deleted one) or
// updates it, replaces its participants, and writes its meeting_cluster
// row. It records no outbox entry. When an outbox entry of the identity is
// pending it writes nothing and returns ErrPending: the REST change goes to
// the cluster first. The check and the write are one transaction that locks
// the row and the identity's outbox entries.
func (s *Store) ApplyFromCluster(ctx context.Context, in FromCluster) (meeting.Meeting, error) {
	m := in.Meeting
	m.Identity = strings.ToLower(m.Identity)
	var saved meeting.Meeting
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var row Meeting
		err := s.forUpdate(tx).Unscoped().Where("identity = ?", m.Identity).Take(&row).Error
		found := err == nil
		if err != nil && !errors.Is(err, gorm.ErrRecordNotFound) {
			return fmt.Errorf("find meeting: %w", err)
		}
		var pending []uint64
		if err := s.forUpdate(tx).Model(&OutboxEntry{}).Where("identity = ?", m.Identity).Pluck("id", &pending).Error; err != nil {
			return fmt.Errorf("check outbox of %s: %w", m.Identity, err)
		}
		if len(pending) > 0 {
			return fmt.Errorf("meeting %s: %w", m.Identity, ErrPending)
		}
		if !found {
			row = meetingRow(m)
			row.ID = 0
			if err := tx.Create(&row).Error; err != nil {
				return fmt.Errorf("create meeting %s from the cluster: %w", m.Identity, err)
			}
		} else {
			id, created := row.ID, row.CreatedAt
			row = meetingRow(m)
			row.ID, row.CreatedAt = id, created
			err := tx.Unscoped().Model(&Meeting{}).Where("id = ?", id).Updates(map[string]any{
				"name": row.Name, "begin_at": row.BeginAt.UTC(), "end_at": row.EndAt.UTC(), "create_id": row.CreatorID,
				"max_participants": row.MaxParticipants, "deleted_at": nil, "updated_at": tx.NowFunc(),
			}).Error
			if err != nil {
				return fmt.Errorf("update meeting %s from the cluster: %w", m.Identity, err)
			}
			if err := tx.Unscoped().Take(&row, id).Error; err != nil {
				return fmt.Errorf("read meeting %s: %w", m.Identity, err)
			}
		}
		if err := tx.Unscoped().Where("rid = ?", row.ID).Delete(&Member{}).Error; err != nil {
			return fmt.Errorf("replace participants: %w", err)
		}
		if err := addMembers(tx, row.ID, row.CreatorID, in.ParticipantIDs); err != nil {
			return err
		}
		c := in.Cluster
		c.Identity = m.Identity
		if err := tx.Clauses(clause.OnConflict{UpdateAll: true}).Create(&c).Error; err != nil {
			return fmt.Errorf("write meeting_cluster %s: %w", c.Identity, err)
		}
		saved = meetingOut(row)
		return nil
	})
	return saved, err
}

// DeleteFromCluster removes the meeting of identity, its participants, its
// meeting_cluster row and any pending outbox entry (the cluster deleted it:
// a pending apply must not bring it back). It records no outbox entry and
// reports whether a meeting row was there.
func (s *Store) DeleteFromCluster(ctx context.Context, identity string) (bool, error) {
	identity = strings.ToLower(identity)
	var existed bool
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var row Meeting
		err := s.forUpdate(tx).Where("identity = ?", identity).Take(&row).Error
		switch {
		case err == nil:
			existed = true
			if err := tx.Unscoped().Where("rid = ?", row.ID).Delete(&Member{}).Error; err != nil {
				return fmt.Errorf("delete participants: %w", err)
			}
			if err := tx.Delete(&row).Error; err != nil {
				return fmt.Errorf("delete meeting: %w", err)
			}
		case !errors.Is(err, gorm.ErrRecordNotFound):
			return fmt.Errorf("find meeting: %w", err)
		}
		if err := tx.Where("identity = ?", identity).Delete(&OutboxEntry{}).Error; err != nil {
			return fmt.Errorf("drop outbox entries: %w", err)
		}
		if err := tx.Where("identity = ?", identity).Delete(&ClusterRow{}).Error; err != nil {
			return fmt.Errorf("delete meeting_cluster: %w", err)
		}
		return nil
	})
	return existed, err
}
