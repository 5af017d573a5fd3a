package sfu

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"meeting.dev/meeting/media/signal"
)

// In a flood of joins and leaves, every joining client's first message is
// its joined, whichever way it passed its token (docs/signaling.md).
func TestJoinedFirstInAJoinFlood(t *testing.T) {
	const (
		clients = 40
		rounds  = 5
	)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s := startSFU(t, Config{MaxParticipants: clients * 2})
	for round := range rounds {
		var wg sync.WaitGroup
		for i := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				user := fmt.Sprintf("u%d-%d", round, i)
				if err := joinAndLeave(ctx, s.url, mint(t, "room-flood", user), i%2 == 0); err != nil {
					t.Errorf("%s: %v", user, err)
				}
			}()
		}
		wg.Wait()
		if t.Failed() {
			return
		}
	}
}

// joinAndLeave joins with tok (in the URL or in a join message), checks
// that the first message is joined, stays a moment reading, and leaves.
func joinAndLeave(ctx context.Context, url, tok string, inURL bool) error {
	if inURL {
		url += "?token=" + tok
	}
	ws, _, err := websocket.DefaultDialer.DialContext(ctx, url, originOf(url))
	if err != nil {
		return err
	}
	defer ws.Close()
	if !inURL {
		b, _ := signal.Encode(signal.Join{Token: tok})
		if err := ws.WriteMessage(websocket.TextMessage, b); err != nil {
			return err
		}
	}
	_ = ws.SetReadDeadline(time.Now().Add(30 * time.Second))
	_, b, err := ws.ReadMessage()
	if err != nil {
		return err
	}
	m, err := signal.Decode(b)
	if err != nil {
		return err
	}
	if _, ok := m.(signal.Joined); !ok {
		return fmt.Errorf("first message %s, want joined", b)
	}
	// Read what the others' joins and leaves bring for a moment, then leave.
	_ = ws.SetReadDeadline(time.Now().Add(time.Duration(rand.IntN(30)) * time.Millisecond))
	for {
		if _, _, err := ws.ReadMessage(); err != nil {
			break
		}
	}
	b, _ = signal.Encode(signal.Leave{})
	_ = ws.WriteMessage(websocket.TextMessage, b)
	return nil
}
