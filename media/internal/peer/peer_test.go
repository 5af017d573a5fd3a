package peer

import (
	"testing"
	"time"

	"github.com/pion/webrtc/v3"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestCloseUnconnectedAtOnce(t *testing.T) {
	pc, err := webrtc.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := Close(pc); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > CloseWait/2 {
		t.Fatalf("closing a new peer connection took %s", d)
	}
	if st := pc.ConnectionState(); st != webrtc.PeerConnectionStateClosed {
		t.Fatalf("state %s after Close", st)
	}
}
