package store

import "meeting.dev/meeting/internal/meeting"

// Errors the store returns are the service's: callers test them with
// errors.Is and the REST layer maps them to replies in one place.
var (
	ErrNotFound = meeting.ErrNotFound
	ErrConflict = meeting.ErrConflict
)
