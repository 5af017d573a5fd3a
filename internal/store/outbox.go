package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"gorm.io/gorm"
)

// Outbox operations: apply the row's current state to the cluster, or delete
// the Meeting resource.
const (
	OpApply  = "apply"
	OpDelete = "delete"
)

// OutboxEntry is a row of meeting_outbox: a REST change to a meeting that the
// sync has not yet carried to the cluster. Entries are state-based: the sync
// applies the row as it is when the entry is handled, so several entries of
// one identity may be handled as one.
type OutboxEntry struct {
	// ID orders the entries.
	ID       uint64 `gorm:"primaryKey"`
	Identity string `gorm:"size:64;not null;index:idx_meeting_outbox_identity"`
	// Name is the Meeting resource's name when the meeting is known to the
	// cluster (meeting_cluster.name); empty means the name derived from the
	// identity.
	Name          string    `gorm:"size:63;not null;default:''"`
	Op            string    `gorm:"size:16;not null"`
	CreatedAt     time.Time `gorm:"not null"`
	Attempts      int       `gorm:"not null;default:0"`
	LastError     string    `gorm:"size:1024;not null;default:''"`
	NextAttemptAt time.Time `gorm:"not null;index:idx_meeting_outbox_next_attempt_at"`
}

// TableName names the outbox table.
func (OutboxEntry) TableName() string { return "meeting_outbox" }

// outbox is the store's outbox switch and its after-commit callback.
type outbox struct {
	enabled atomic.Bool
	notify  atomic.Pointer[func()]
}

// EnableOutbox makes every meeting write (create, edit, delete, add or remove
// a participant) record an outbox entry in its own transaction, for the sync
// to carry to the cluster. Standalone never enables it. It is safe to call
// more than once.
func (s *Store) EnableOutbox() { s.outbox.enabled.Store(true) }

// OutboxEnabled reports whether EnableOutbox was called.
func (s *Store) OutboxEnabled() bool { return s.outbox.enabled.Load() }

// OnOutbox sets the function called after a transaction that recorded an
// outbox entry has committed (the sync's wake-up); nil removes it. It must
// not block.
func (s *Store) OnOutbox(f func()) {
	if f == nil {
		s.outbox.notify.Store(nil)
		return
	}
	s.outbox.notify.Store(&f)
}

// writeTx runs fn in a transaction and, when the outbox is enabled and the
// transaction committed, calls the outbox callback.
func (s *Store) writeTx(ctx context.Context, fn func(tx *gorm.DB) error) error {
	if err := s.db.WithContext(ctx).Transaction(fn); err != nil {
		return err
	}
	if s.OutboxEnabled() {
		if f := s.outbox.notify.Load(); f != nil {
			(*f)()
		}
	}
	return nil
}

// enqueue records an outbox entry for identity in tx when the outbox is
// enabled. A delete carries the resource name the cluster knows the meeting
// by, read from meeting_cluster before the row goes.
func (s *Store) enqueue(tx *gorm.DB, identity, op string) error {
	if !s.OutboxEnabled() {
		return nil
	}
	return insertEntry(tx, strings.ToLower(identity), op, tx.NowFunc())
}

func insertEntry(tx *gorm.DB, identity, op string, now time.Time) error {
	var name string
	var c ClusterRow
	err := tx.Where("identity = ?", identity).Take(&c).Error
	switch {
	case err == nil:
		name = c.Name
	case !errors.Is(err, gorm.ErrRecordNotFound):
		return fmt.Errorf("outbox: read meeting_cluster of %s: %w", identity, err)
	}
	e := OutboxEntry{Identity: identity, Name: name, Op: op, CreatedAt: now, NextAttemptAt: now}
	if err := tx.Create(&e).Error; err != nil {
		return fmt.Errorf("outbox: record %s of %s: %w", op, identity, err)
	}
	return nil
}

// Enqueue records an outbox entry outside a REST write (the resync's "row
// never in the cluster") and calls the outbox callback.
func (s *Store) Enqueue(ctx context.Context, identity, op string) error {
	if op != OpApply && op != OpDelete {
		return fmt.Errorf("outbox: unknown op %q", op)
	}
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		return insertEntry(tx, strings.ToLower(identity), op, tx.NowFunc())
	})
	if err != nil {
		return err
	}
	if f := s.outbox.notify.Load(); f != nil {
		(*f)()
	}
	return nil
}

// OutboxBatch is the pending entries of one identity, in order.
type OutboxBatch struct {
	Identity string
	// Entries are the identity's pending entries, oldest first.
	Entries []OutboxEntry
}

// Last is the newest entry of the batch.
func (b OutboxBatch) Last() OutboxEntry { return b.Entries[len(b.Entries)-1] }

// MaxID is the id of the newest entry: AckOutbox and FailOutbox take it so
// that an entry recorded while the batch was handled stays pending.
func (b OutboxBatch) MaxID() uint64 { return b.Last().ID }

// Name is the newest resource name any entry carries, or "".
func (b OutboxBatch) Name() string {
	for i := len(b.Entries) - 1; i >= 0; i-- {
		if b.Entries[i].Name != "" {
			return b.Entries[i].Name
		}
	}
	return ""
}

// DueOutbox returns up to limit pending entries in id order, grouped by
// identity (groups in the order of their oldest entry), keeping only the
// groups whose oldest entry is due at now: an identity in back-off holds
// its later entries back, so an identity's changes are applied in order.
func (s *Store) DueOutbox(ctx context.Context, now time.Time, limit int) ([]OutboxBatch, error) {
	db := s.db.WithContext(ctx)
	// Only identities whose oldest entry is due: one in back-off neither
	// comes back nor takes a place in the limit.
	oldest := db.Model(&OutboxEntry{}).Select("MIN(id)").Group("identity")
	due := db.Model(&OutboxEntry{}).Select("identity").Where("id IN (?) AND next_attempt_at <= ?", oldest, now.UTC())
	var rows []OutboxEntry
	if err := db.Where("identity IN (?)", due).Order("id").Limit(limit).Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("read outbox: %w", err)
	}
	idx := map[string]int{}
	var batches []OutboxBatch
	for _, e := range rows {
		i, ok := idx[e.Identity]
		if !ok {
			i = len(batches)
			idx[e.Identity] = i
			batches = append(batches, OutboxBatch{Identity: e.Identity})
		}
		batches[i].Entries = append(batches[i].Entries, e)
	}
	return batches, nil
}

// AckOutbox removes the entries of identity up to maxID: they are in the cluster.
func (s *Store) AckOutbox(ctx context.Context, identity string, maxID uint64) error {
	err := s.db.WithContext(ctx).Where("identity = ? AND id <= ?", identity, maxID).Delete(&OutboxEntry{}).Error
	if err != nil {
		return fmt.Errorf("ack outbox entries of %s: %w", identity, err)
	}
	return nil
}

// FailOutbox records a failed attempt on the entries of identity up to
// maxID and holds them back until next.
func (s *Store) FailOutbox(ctx context.Context, identity string, maxID uint64, cause error, next time.Time) error {
	msg := cause.Error()
	if len(msg) > 1000 {
		msg = msg[:1000]
	}
	err := s.db.WithContext(ctx).Model(&OutboxEntry{}).Where("identity = ? AND id <= ?", identity, maxID).
		Updates(map[string]any{
			"attempts":        gorm.Expr("attempts + 1"),
			"last_error":      msg,
			"next_attempt_at": next.UTC(),
		}).Error
	if err != nil {
		return fmt.Errorf("record outbox failure of %s: %w", identity, err)
	}
	return nil
}

// OutboxStats returns how many entries are pending and when the oldest was
// recorded (zero when none is).
func (s *Store) OutboxStats(ctx context.Context) (depth int64, oldest time.Time, err error) {
	db := s.db.WithContext(ctx)
	if err := db.Model(&OutboxEntry{}).Count(&depth).Error; err != nil {
		return 0, time.Time{}, fmt.Errorf("outbox stats: %w", err)
	}
	if depth == 0 {
		return 0, time.Time{}, nil
	}
	var first []OutboxEntry
	if err := db.Order("id").Limit(1).Find(&first).Error; err != nil {
		return 0, time.Time{}, fmt.Errorf("outbox stats: %w", err)
	}
	if len(first) > 0 {
		oldest = first[0].CreatedAt
	}
	return depth, oldest, nil
}

// HasPending reports whether an outbox entry of identity is pending.
func (s *Store) HasPending(ctx context.Context, identity string) (bool, error) {
	return hasPending(s.db.WithContext(ctx), identity)
}

func hasPending(db *gorm.DB, identity string) (bool, error) {
	var ids []uint64
	if err := db.Model(&OutboxEntry{}).Where("identity = ?", strings.ToLower(identity)).Limit(1).Pluck("id", &ids).Error; err != nil {
		return false, fmt.Errorf("check outbox of %s: %w", identity, err)
	}
	return len(ids) > 0, nil
}

// PendingIdentities returns every identity with a pending outbox entry.
func (s *Store) PendingIdentities(ctx context.Context) (map[string]bool, error) {
	var ids []string
	if err := s.db.WithContext(ctx).Model(&OutboxEntry{}).Distinct("identity").Pluck("identity", &ids).Error; err != nil {
		return nil, fmt.Errorf("list pending identities: %w", err)
	}
	out := make(map[string]bool, len(ids))
	for _, id := range ids {
		out[id] = true
	}
	return out, nil
}

// enqueueByID is enqueue for the meeting with that row id.
func (s *Store) enqueueByID(tx *gorm.DB, meetingID uint64, op string) error {
	if !s.OutboxEnabled() {
		return nil
	}
	var m Meeting
	if err := tx.Select("identity").Take(&m, meetingID).Error; err != nil {
		return fmt.Errorf("outbox: find meeting %d: %w", meetingID, err)
	}
	return s.enqueue(tx, m.Identity, op)
}
