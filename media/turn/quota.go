package turn

import (
	"fmt"
	"sync"
	"time"
)

// reservationTimeout bounds how long a passed Allocate request counts against
// the quotas while pion has not answered it (pion answers at once; this only
// guards against an answer that never comes).
const reservationTimeout = 10 * time.Second

// quotas accounts allocations per user and in total. An authenticated
// Allocate request reserves a slot; the success response turns the
// reservation into an allocation bound to its relay address, an error
// response cancels it, and closing the relay socket releases it. Reservations
// count against the quotas so concurrent requests cannot overshoot them.
type quotas struct {
	perUser, total int // 0: unlimited
	now            func() time.Time

	mu       sync.Mutex
	pending  map[[12]byte]reservation // by transaction ID
	relays   map[string]*relayEntry   // by relay address, from socket open to close
	tuples   map[string]string        // client 5-tuple → relay address of its allocation
	users    map[string]int           // allocations plus reservations per user
	occupied int                      // allocations plus reservations in total
}

type reservation struct {
	user, tuple string
	at          time.Time
}

type relayEntry struct {
	bound       bool // counted for user
	user, tuple string
	conn        *relayConn
}

func newQuotas(perUser, total int, now func() time.Time) *quotas {
	return &quotas{
		perUser: perUser, total: total, now: now,
		pending: map[[12]byte]reservation{},
		relays:  map[string]*relayEntry{},
		tuples:  map[string]string{},
		users:   map[string]int{},
	}
}

// allocated reports whether the client 5-tuple already holds an allocation
// (a retransmitted Allocate, which pion answers from its cache).
func (q *quotas) allocated(tuple string) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	_, ok := q.tuples[tuple]
	return ok
}

// reserve takes a slot for an Allocate request of user from tuple, or
// returns ErrUserQuota or ErrTotalQuota.
func (q *quotas) reserve(tx [12]byte, user, tuple string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if _, dup := q.pending[tx]; dup {
		return nil // a retransmission of a request already counted
	}
	q.expireLocked()
	if q.total > 0 && q.occupied >= q.total {
		return fmt.Errorf("%w (%d)", ErrTotalQuota, q.total)
	}
	if q.perUser > 0 && q.users[user] >= q.perUser {
		return fmt.Errorf("%w (%d for %q)", ErrUserQuota, q.perUser, user)
	}
	q.pending[tx] = reservation{user: user, tuple: tuple, at: q.now()}
	q.users[user]++
	q.occupied++
	return nil
}

// expireLocked drops reservations that never saw an answer.
func (q *quotas) expireLocked() {
	cutoff := q.now().Add(-reservationTimeout)
	for tx, r := range q.pending {
		if r.at.Before(cutoff) {
			delete(q.pending, tx)
			q.releaseLocked(r.user)
		}
	}
}

func (q *quotas) releaseLocked(user string) {
	q.occupied--
	if q.users[user]--; q.users[user] <= 0 {
		delete(q.users, user)
	}
}

// opened records a relay socket pion is about to use for an allocation.
func (q *quotas) opened(relay string, conn *relayConn) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.relays[relay] = &relayEntry{conn: conn}
}

// relayOf returns the relay socket of the allocation of a client 5-tuple.
func (q *quotas) relayOf(tuple string) *relayConn {
	q.mu.Lock()
	defer q.mu.Unlock()
	if e, ok := q.relays[q.tuples[tuple]]; ok {
		return e.conn
	}
	return nil
}

// confirmed binds the reservation of transaction tx to the allocation at
// relay, once pion has answered the Allocate with success.
func (q *quotas) confirmed(tx [12]byte, relay string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	r, ok := q.pending[tx]
	if !ok {
		return // a cached answer to a retransmission, or not reserved
	}
	delete(q.pending, tx)
	e, open := q.relays[relay]
	if !open || e.bound {
		q.releaseLocked(r.user) // the allocation is already gone
		return
	}
	*e = relayEntry{bound: true, user: r.user, tuple: r.tuple, conn: e.conn}
	q.tuples[r.tuple] = relay
}

// refused cancels the reservation of transaction tx after an error answer.
func (q *quotas) refused(tx [12]byte) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if r, ok := q.pending[tx]; ok {
		delete(q.pending, tx)
		q.releaseLocked(r.user)
	}
}

// closed releases the allocation at relay when pion closes its socket.
func (q *quotas) closed(relay string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	e, ok := q.relays[relay]
	if !ok {
		return
	}
	delete(q.relays, relay)
	if e.bound {
		delete(q.tuples, e.tuple)
		q.releaseLocked(e.user)
	}
}

// usage returns the allocations and reservations of user and in total.
func (q *quotas) usage(user string) (ofUser, total int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.users[user], q.occupied
}
