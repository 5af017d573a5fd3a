// Package sfu is the selective forwarding unit of the Meeting platform:
// rooms keyed by meeting identity whose participants publish audio, camera
// and screen tracks over WebRTC (pion) and receive everyone else's, with
// signalling over WebSocket (package signal) and join tokens (package token).
package sfu

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Config configures an SFU. Zero values of optional fields take defaults.
type Config struct {
	// Keys returns the join-token key of a room; required. A join token is
	// verified with the key of the room it names; an error (the room is not
	// open, or unknown) refuses the join as unauthorized with the error's
	// text. It is called twice per join (to verify the token and, once
	// admitted, to refuse a join whose room closed meanwhile), from many
	// goroutines, with no lock of the SFU held.
	Keys func(room string) ([]byte, error)
	// Registerer receives the SFU's metrics; nil registers them nowhere.
	Registerer prometheus.Registerer
	// MaxParticipants caps each room (default 50) that RoomLimit does not.
	MaxParticipants int
	// RoomLimit, when set, returns the cap of a room (its meeting's
	// maxParticipants); a result <= 0 means MaxParticipants. It is asked
	// at each join, with no lock of the SFU held, so a changed cap applies
	// to the next join.
	RoomLimit func(room string) int
	// DrainTimeout is how long Shutdown waits for participants to leave
	// after telling them the server is closing (default 30s).
	DrainTimeout time.Duration
	// AllowedOrigins lists the Origin header values accepted by Handler
	// besides the same origin (scheme, host and port), such as
	// "https://meet.example.org"; "*" accepts any request, also one
	// without Origin.
	AllowedOrigins []string
	// AllowNoOrigin accepts requests without an Origin header, as clients
	// other than browsers may send them. Off by default: every browser
	// sends Origin, and so does package client.
	AllowNoOrigin bool
	// PublicIPs are announced in ICE candidates instead of the address the
	// UDP socket is bound to (1:1 NAT).
	PublicIPs []string
	// JoinTimeout bounds the wait for the join message (default 10s).
	JoinTimeout time.Duration
	// Logger receives the SFU's logs (default slog.Default()).
	Logger *slog.Logger
	// Now is the clock of token expiry and of room warnings (default time.Now).
	Now func() time.Time
}

// Defaults.
const (
	DefaultMaxParticipants = 50
	DefaultDrainTimeout    = 30 * time.Second
	DefaultJoinTimeout     = 10 * time.Second
)

func (c *Config) setDefaults() {
	if c.MaxParticipants == 0 {
		c.MaxParticipants = DefaultMaxParticipants
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = DefaultDrainTimeout
	}
	if c.JoinTimeout == 0 {
		c.JoinTimeout = DefaultJoinTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Validate reports what is wrong with c, after defaults.
func (c Config) Validate() error {
	var errs []error
	if c.Keys == nil {
		errs = append(errs, errors.New("key lookup (Keys) is required"))
	}
	if c.MaxParticipants < 0 {
		errs = append(errs, fmt.Errorf("max participants %d is negative", c.MaxParticipants))
	}
	if c.DrainTimeout < 0 {
		errs = append(errs, fmt.Errorf("drain timeout %s is negative", c.DrainTimeout))
	}
	for _, ip := range c.PublicIPs {
		if net.ParseIP(ip) == nil {
			errs = append(errs, fmt.Errorf("public IP %q is not an IP address", ip))
		}
	}
	return errors.Join(errs...)
}
