package turn

import "errors"

var (
	// ErrMalformedUsername means a username is not "<unix expiry>:<user>".
	ErrMalformedUsername = errors.New("turn: username is not <unix expiry>:<user>")
	// ErrExpired means the expiry in a username has passed.
	ErrExpired = errors.New("turn: credentials expired")
	// ErrWrongRealm means a request named another realm than the server's.
	ErrWrongRealm = errors.New("turn: wrong realm")
	// ErrUserQuota means the user already holds as many allocations as allowed.
	ErrUserQuota = errors.New("turn: allocation quota of the user reached")
	// ErrTotalQuota means the server already holds as many allocations as allowed.
	ErrTotalQuota = errors.New("turn: allocation quota of the server reached")
	// ErrTCPRelay means a client asked for a TCP relay (RFC 6062), which
	// pion/turn v2 does not offer.
	ErrTCPRelay = errors.New("turn: TCP relay allocations (RFC 6062) are not supported")
)
