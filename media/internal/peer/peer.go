// Package peer holds what the SFU and the Go client share about pion peer
// connections.
package peer

import (
	"time"

	"github.com/pion/webrtc/v3"
)

// CloseWait bounds how long Close waits for a connecting peer connection to
// settle.
const CloseWait = time.Second

// Close closes pc, first letting a connection that is still connecting
// finish, for at most CloseWait: pion/webrtc v3.3.6 has a data race between
// Close and the ICE transport's set-up right after its connectivity check
// succeeds. On loopback and on real networks a live peer connects well
// within the wait; a dead one is closed after it.
func Close(pc *webrtc.PeerConnection) error {
	deadline := time.Now().Add(CloseWait)
	for settling(pc) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	return pc.Close()
}

// settling reports whether pc is still connecting: its ICE transport may be
// about to be set up.
func settling(pc *webrtc.PeerConnection) bool {
	return pc.ConnectionState() == webrtc.PeerConnectionStateConnecting
}
