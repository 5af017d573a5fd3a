package store

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"gorm.io/gorm"

	"meeting.dev/meeting/internal/meeting"
)

// CreateUser adds a user with an already hashed password. A taken username
// (deleted users included) is ErrConflict.
//
// Usernames are stored in lower case and every lookup lower-cases the name
// it is given, so that they compare without case on SQLite as on MySQL,
// whatever the column's collation.
func (s *Store) CreateUser(ctx context.Context, username, passwordHash string) (meeting.Account, error) {
	u := User{Username: strings.ToLower(username), Password: passwordHash}
	err := s.db.WithContext(ctx).Create(&u).Error
	if errors.Is(err, gorm.ErrDuplicatedKey) {
		return meeting.Account{}, fmt.Errorf("user %q: %w", username, ErrConflict)
	}
	if err != nil {
		return meeting.Account{}, fmt.Errorf("create user: %w", err)
	}
	return accountOut(u), nil
}

// UserByName returns the account with that name in any letter case, or
// ErrNotFound.
func (s *Store) UserByName(ctx context.Context, username string) (meeting.Account, error) {
	var u User
	err := s.db.WithContext(ctx).Where("username = ?", strings.ToLower(username)).Take(&u).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return meeting.Account{}, fmt.Errorf("user %q: %w", username, ErrNotFound)
	}
	if err != nil {
		return meeting.Account{}, fmt.Errorf("find user: %w", err)
	}
	return accountOut(u), nil
}

// UserByID returns the account with that id, or ErrNotFound.
func (s *Store) UserByID(ctx context.Context, id uint64) (meeting.Account, error) {
	var u User
	err := s.db.WithContext(ctx).Take(&u, id).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return meeting.Account{}, fmt.Errorf("user %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return meeting.Account{}, fmt.Errorf("find user: %w", err)
	}
	return accountOut(u), nil
}

// SetPassword replaces a user's password hash and nothing else: the
// re-hash of a seed md5 password at login, which must not revoke tokens.
func (s *Store) SetPassword(ctx context.Context, id uint64, passwordHash string) error {
	res := s.db.WithContext(ctx).Model(&User{}).Where("id = ?", id).Update("password", passwordHash)
	if res.Error != nil {
		return fmt.Errorf("set password: %w", res.Error)
	}
	if res.RowsAffected == 0 {
		return fmt.Errorf("user %d: %w", id, ErrNotFound)
	}
	return nil
}

// ChangePassword sets a user's password hash and increments its token
// generation in one UPDATE, so that every API token issued before is
// refused; it returns the new generation.
func (s *Store) ChangePassword(ctx context.Context, id uint64, passwordHash string) (uint64, error) {
	var gen uint64
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		res := tx.Model(&User{}).Where("id = ?", id).Updates(map[string]any{
			"password":         passwordHash,
			"token_generation": gorm.Expr("token_generation + 1"),
		})
		if res.Error != nil {
			return fmt.Errorf("change password: %w", res.Error)
		}
		if res.RowsAffected == 0 {
			return fmt.Errorf("user %d: %w", id, ErrNotFound)
		}
		var u User
		if err := tx.Select("token_generation").Take(&u, id).Error; err != nil {
			return fmt.Errorf("change password: %w", err)
		}
		gen = u.TokenGeneration
		return nil
	})
	return gen, err
}
