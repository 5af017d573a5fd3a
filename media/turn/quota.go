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
//
// Requests and answers are matched by client 5-tuple and transaction ID: a
// transaction ID is chosen by the client, so the same one on another
// connection is another request, not a retransmission. pion handles the
// requests of one 5-tuple one at a time, so a request and its answer are
// never interleaved with another request of the same 5-tuple.
type quotas struct {
	perUser, total int // 0: unlimited
	now            func() time.Time

	mu       sync.Mutex
	pending  map[pendingKey]reservation // Allocates pion has not answered yet
	relays   map[string]*relayEntry     // by relay address, from socket open to close
	tuples   map[string]string          // client 5-tuple → relay address of its allocation
	users    map[string]int             // allocations plus reservations per user
	occupied int                        // allocations plus reservations in total
}

// pendingKey names one Allocate request: its client 5-tuple and transaction ID.
type pendingKey struct {
	tuple string
	tx    [12]byte
}

type reservation struct {
	user string
	at   time.Time
	// counted is false for a request from a 5-tuple that already holds an
	// allocation: pion answers it from its cache or with 437 and creates
	// nothing, so it takes no slot (a client at its quota may retransmit).
	counted bool
}

type relayEntry struct {
	bound       bool // an allocation, counted in occupied
	hasUser     bool // counted for user too
	user, tuple string
	conn        *relayConn
}

func newQuotas(perUser, total int, now func() time.Time) *quotas {
	return &quotas{
		perUser: perUser, total: total, now: now,
		pending: map[pendingKey]reservation{},
		relays:  map[string]*relayEntry{},
		tuples:  map[string]string{},
		users:   map[string]int{},
	}
}

// reserve takes a slot for an Allocate request of user from the client
// 5-tuple tuple, or returns ErrUserQuota or ErrTotalQuota.
func (q *quotas) reserve(tx [12]byte, user, tuple string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	key := pendingKey{tuple: tuple, tx: tx}
	if _, dup := q.pending[key]; dup {
		return nil // a retransmission of a request already counted
	}
	q.expireLocked()
	if _, held := q.tuples[tuple]; held {
		q.pending[key] = reservation{user: user, at: q.now()}
		return nil
	}
	if q.total > 0 && q.occupied >= q.total {
		return fmt.Errorf("%w (%d)", ErrTotalQuota, q.total)
	}
	if q.perUser > 0 && q.users[user] >= q.perUser {
		return fmt.Errorf("%w (%d for %q)", ErrUserQuota, q.perUser, user)
	}
	q.pending[key] = reservation{user: user, at: q.now(), counted: true}
	q.users[user]++
	q.occupied++
	return nil
}

// expireLocked drops reservations that never saw an answer.
func (q *quotas) expireLocked() {
	cutoff := q.now().Add(-reservationTimeout)
	for key, r := range q.pending {
		if r.at.Before(cutoff) {
			delete(q.pending, key)
			q.cancelLocked(r)
		}
	}
}

// cancelLocked gives back what a reservation took.
func (q *quotas) cancelLocked(r reservation) {
	if r.counted {
		q.releaseLocked(r.user, true)
	}
}

func (q *quotas) releaseLocked(user string, hasUser bool) {
	q.occupied--
	if !hasUser {
		return
	}
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

// confirmed binds the allocation at relay to the Allocate of transaction tx
// from tuple, once pion has answered it with success. Every new allocation
// is counted, with or without a reservation (one that lapsed, or a request
// from a 5-tuple whose allocation ended meanwhile), even beyond the quota:
// the counts must not fall below what pion holds. It reports whether relay
// became an allocation now.
func (q *quotas) confirmed(tx [12]byte, tuple, relay string) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	key := pendingKey{tuple: tuple, tx: tx}
	r, reserved := q.pending[key]
	delete(q.pending, key)
	e, open := q.relays[relay]
	if !open || e.bound {
		// The allocation is already gone, or this is a cached answer to a
		// retransmission of a request already counted.
		if reserved {
			q.cancelLocked(r)
		}
		return false
	}
	if !r.counted {
		q.occupied++
		if reserved {
			q.users[r.user]++
		}
	}
	*e = relayEntry{bound: true, hasUser: reserved, user: r.user, tuple: tuple, conn: e.conn}
	q.tuples[tuple] = relay
	return true
}

// refused cancels the reservation of the Allocate of transaction tx from
// tuple after an error answer.
func (q *quotas) refused(tx [12]byte, tuple string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	key := pendingKey{tuple: tuple, tx: tx}
	if r, ok := q.pending[key]; ok {
		delete(q.pending, key)
		q.cancelLocked(r)
	}
}

// closed releases the allocation at relay when pion closes its socket, and
// reports whether the socket was an allocation's: pion also opens and
// closes sockets to find an even port (EVEN-PORT), which never are.
func (q *quotas) closed(relay string) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	e, ok := q.relays[relay]
	if !ok {
		return false
	}
	delete(q.relays, relay)
	if e.bound {
		if q.tuples[e.tuple] == relay {
			delete(q.tuples, e.tuple)
		}
		q.releaseLocked(e.user, e.hasUser)
	}
	return e.bound
}

// openRelays is the number of relay sockets open.
func (q *quotas) openRelays() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.relays)
}

// usage returns the allocations and reservations of user and in total.
func (q *quotas) usage(user string) (ofUser, total int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.users[user], q.occupied
}
