package e2e

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"meeting.dev/meeting/media/client"
)

// BenchmarkJoinLatency measures, against the built binary running
// standalone, how long a participant waits from its REST join request to
// the first RTP packet of the other participant: POST /auth/meeting/join,
// the WebSocket join, both peer connections, and the SFU forwarding the
// publisher's video (after a keyframe request). A publisher stays in the
// meeting; 50 joins follow one after another (5 users, 10 each, within the
// join rate limit), each closed before the next. It prints p50/p95/max;
// the target is p95 ≤ 300 ms on loopback. hack/bench.sh runs one iteration.
func BenchmarkJoinLatency(b *testing.B) {
	const joins, users = 50, 5
	var lat []time.Duration
	for range b.N {
		lat = append(lat, joinLatencies(b, joins, users)...)
	}
	slices.Sort(lat)
	p := func(q float64) time.Duration { return lat[int(q*float64(len(lat)-1))] }
	b.ReportMetric(float64(p(0.5))/1e6, "p50-ms")
	b.ReportMetric(float64(p(0.95))/1e6, "p95-ms")
	fmt.Printf("\njoin → first RTP of the other participant, %d joins: p50 %s, p95 %s, max %s (target p95 ≤ 300ms)\n\n",
		len(lat), p(0.5).Round(time.Millisecond), p(0.95).Round(time.Millisecond), lat[len(lat)-1].Round(time.Millisecond))
}

func joinLatencies(b *testing.B, joins, users int) []time.Duration {
	p, base := standalone(b, b.TempDir())
	defer p.stop(b)
	host := account(b, base, "host")
	names := make([]string, users)
	apis := make([]*client.API, users)
	for i := range users {
		names[i] = fmt.Sprintf("guest%d", i)
		apis[i] = account(b, base, names[i])
	}
	now := time.Now()
	m := createMeeting(b, host, "bench", now, now.Add(time.Hour), names...)
	pub := joinAndPublish(b, host, m.Identity, client.Options{})

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var out []time.Duration
	for i := range joins {
		t0 := time.Now()
		c, _, err := apis[i%users].JoinMeeting(ctx, m.Identity, client.Options{})
		if err != nil {
			b.Fatalf("join %d: %v", i, err)
		}
		var first time.Time
		err = client.Wait(ctx, func() bool {
			for _, s := range c.Tracks() {
				if s.Info.Participant == pub.ID() && !s.FirstAt.IsZero() {
					first = s.FirstAt
					return true
				}
			}
			return false
		})
		c.Close()
		if err != nil {
			b.Fatalf("join %d: no packet from the publisher: %v", i, err)
		}
		out = append(out, first.Sub(t0))
	}
	return out
}
