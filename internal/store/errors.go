package store

import "errors"

// Errors the store returns; callers map them to replies in one place.
var (
	ErrNotFound  = errors.New("not found")
	ErrConflict  = errors.New("already exists")
	ErrForbidden = errors.New("forbidden")
)
