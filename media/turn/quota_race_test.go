package turn

import (
	"crypto/rand"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/pion/stun"
)

// TestQuotasUnderRacingTCPAllocates sends 60 authenticated Allocates at once,
// one per TCP connection, and checks that exactly the quota of them
// succeeds: with one transaction ID shared by every connection (which once
// counted as retransmissions of a single request) and with distinct ones,
// for one user and for many users against the total quota. No allocation
// ends during the test, so the allocations at its end bound those at any
// moment of it: the quota was never exceeded.
func TestQuotasUnderRacingTCPAllocates(t *testing.T) {
	const conns = 60
	for _, tc := range []struct {
		name                  string
		sameTx                bool
		users                 int // connection i authenticates as user i % users
		userQuota, totalQuota int
		want                  int
	}{
		{"one user, one transaction ID", true, 1, 3, 100, 3},
		{"one user, distinct transaction IDs", false, 1, 3, 100, 3},
		{"many users, one transaction ID", true, conns, 3, 5, 5},
		{"many users, distinct transaction IDs", false, conns, 3, 5, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tcp := loopbackTCP(t)
			s, reg := startServer(t, func(c *Config) {
				c.Listeners = []net.Listener{tcp}
				c.UserQuota, c.TotalQuota = tc.userQuota, tc.totalQuota
				c.TCPConnsPerSource = 0 // every racer comes from 127.0.0.1
			})
			nonce := tcpNonce(t, tcp.Addr())
			var shared [stun.TransactionIDSize]byte
			_, _ = rand.Read(shared[:])
			reqs := make([][]byte, conns)
			clients := make([]net.Conn, conns)
			for i := range clients {
				tx := shared
				if !tc.sameTx {
					_, _ = rand.Read(tx[:])
				}
				user, pass := creds(fmt.Sprintf("racer%d", i%tc.users), time.Hour)
				reqs[i] = authAllocate(t, tx, user, pass, nonce)
				c, err := net.Dial("tcp", tcp.Addr().String())
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = c.Close() })
				clients[i] = c
			}
			codes := make([]int, conns)
			errs := make([]error, conns)
			start := make(chan struct{})
			var wg sync.WaitGroup
			for i, c := range clients {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					resp, err := roundTrip(c, reqs[i])
					if err != nil {
						errs[i] = err
						return
					}
					codes[i] = errorCode(resp)
				}()
			}
			close(start)
			wg.Wait()
			granted, refused := 0, 0
			for i := range clients {
				switch {
				case errs[i] != nil:
					t.Errorf("connection %d: %v", i, errs[i])
				case codes[i] == 0:
					granted++
				case codes[i] == int(stun.CodeAllocQuotaReached):
					refused++
				default:
					t.Errorf("connection %d: error %d, want success or 486", i, codes[i])
				}
			}
			if granted != tc.want || refused != conns-tc.want {
				t.Errorf("%d allocations granted and %d refused with 486, want %d and %d", granted, refused, tc.want, conns-tc.want)
			}
			if n := s.Allocations(); n != tc.want {
				t.Errorf("server holds %d allocations, want %d", n, tc.want)
			}
			if got := metricValue(t, reg, "meeting_turn_allocations", "", ""); got != float64(tc.want) {
				t.Errorf("allocations gauge = %v, want %d", got, tc.want)
			}
			// Every success is counted: the quotas see what pion holds.
			if _, total := s.quotas.usage(""); total != tc.want {
				t.Errorf("quotas count %d allocations, want %d", total, tc.want)
			}
		})
	}
}
