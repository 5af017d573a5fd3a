package turn

import (
	"errors"
	"testing"
	"time"
)

func tx(b byte) [12]byte { return [12]byte{b} }

// allocated reports whether the client 5-tuple holds an allocation.
func allocated(q *quotas, tuple string) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	_, ok := q.tuples[tuple]
	return ok
}

func TestQuotasPerUser(t *testing.T) {
	now := time.Unix(0, 0)
	q := newQuotas(2, 0, func() time.Time { return now })
	if err := q.reserve(tx(1), "alice", "t1"); err != nil {
		t.Fatal(err)
	}
	if err := q.reserve(tx(1), "alice", "t1"); err != nil { // retransmission
		t.Fatal(err)
	}
	if err := q.reserve(tx(2), "alice", "t2"); err != nil {
		t.Fatal(err)
	}
	if err := q.reserve(tx(3), "alice", "t3"); !errors.Is(err, ErrUserQuota) {
		t.Fatalf("third reservation: %v, want ErrUserQuota", err)
	}
	if err := q.reserve(tx(4), "bob", "t4"); err != nil {
		t.Fatalf("another user: %v", err)
	}
	// tx 1 succeeds, tx 2 fails: one slot of alice frees.
	q.opened("127.0.0.1:50000", nil)
	q.confirmed(tx(1), "t1", "127.0.0.1:50000")
	q.refused(tx(2), "t2")
	if u, total := q.usage("alice"); u != 1 || total != 2 {
		t.Fatalf("usage = %d, %d; want 1, 2", u, total)
	}
	if !allocated(q, "t1") || allocated(q, "t2") {
		t.Fatal("allocated() does not track the 5-tuple of the allocation")
	}
	// A cached success to a retransmission is not counted twice.
	q.confirmed(tx(1), "t1", "127.0.0.1:50000")
	if u, _ := q.usage("alice"); u != 1 {
		t.Fatalf("usage after duplicate success = %d", u)
	}
	q.closed("127.0.0.1:50000")
	if u, _ := q.usage("alice"); u != 0 || allocated(q, "t1") {
		t.Fatalf("usage after close = %d", u)
	}
	q.closed("127.0.0.1:50000") // twice is harmless
	if u, total := q.usage("alice"); u != 0 || total != 1 {
		t.Fatalf("usage = %d, %d; want 0, 1 (bob's reservation)", u, total)
	}
}

func TestQuotasTotalAndExpiry(t *testing.T) {
	now := time.Unix(0, 0)
	q := newQuotas(0, 2, func() time.Time { return now })
	for i := byte(0); i < 2; i++ {
		if err := q.reserve(tx(i), "u", "t"); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.reserve(tx(9), "v", "t9"); !errors.Is(err, ErrTotalQuota) {
		t.Fatalf("over total: %v", err)
	}
	// Reservations nobody answered lapse.
	now = now.Add(reservationTimeout + time.Second)
	if err := q.reserve(tx(9), "v", "t9"); err != nil {
		t.Fatalf("after expiry: %v", err)
	}
	if _, total := q.usage("v"); total != 1 {
		t.Fatalf("total = %d, want 1", total)
	}
}

func TestQuotasSuccessAfterClose(t *testing.T) {
	q := newQuotas(1, 0, time.Now)
	if err := q.reserve(tx(1), "u", "t"); err != nil {
		t.Fatal(err)
	}
	// The socket closed before its success answer was seen: nothing stays held.
	q.opened("r", nil)
	q.closed("r")
	q.confirmed(tx(1), "t", "r")
	if u, total := q.usage("u"); u != 0 || total != 0 {
		t.Fatalf("usage = %d, %d", u, total)
	}
}

// TestQuotasKeyedByTupleAndTransaction checks that a transaction ID counts
// as a retransmission only on the 5-tuple that sent it: clients choose
// transaction IDs, so another connection may send the same one.
func TestQuotasKeyedByTupleAndTransaction(t *testing.T) {
	q := newQuotas(2, 0, time.Now)
	for _, tuple := range []string{"tcp a", "tcp b"} {
		if err := q.reserve(tx(1), "u", tuple); err != nil {
			t.Fatalf("%s: %v", tuple, err)
		}
	}
	if err := q.reserve(tx(1), "u", "tcp c"); !errors.Is(err, ErrUserQuota) {
		t.Fatalf("third 5-tuple with the same transaction ID: %v, want ErrUserQuota", err)
	}
	if err := q.reserve(tx(1), "u", "tcp a"); err != nil {
		t.Fatalf("retransmission on the same 5-tuple: %v", err)
	}
	q.opened("r1", nil)
	q.opened("r2", nil)
	q.confirmed(tx(1), "tcp a", "r1")
	q.confirmed(tx(1), "tcp b", "r2")
	if u, total := q.usage("u"); u != 2 || total != 2 {
		t.Fatalf("usage = %d, %d; want 2, 2", u, total)
	}
	// An answer to another 5-tuple does not touch these.
	q.refused(tx(1), "tcp c")
	if u, total := q.usage("u"); u != 2 || total != 2 {
		t.Fatalf("usage after a foreign refusal = %d, %d; want 2, 2", u, total)
	}
}

// TestQuotasCountEverySuccess checks that a success nobody reserved for
// (a lapsed reservation, or a retransmission from a 5-tuple whose
// allocation ended meanwhile) is counted, and released once.
func TestQuotasCountEverySuccess(t *testing.T) {
	now := time.Unix(0, 0)
	q := newQuotas(1, 0, func() time.Time { return now })
	q.opened("r1", nil)
	q.confirmed(tx(1), "t1", "r1") // no reservation at all
	if _, total := q.usage(""); total != 1 {
		t.Fatalf("unreserved success: total = %d, want 1", total)
	}
	// A 5-tuple holding an allocation may retransmit at its quota.
	if err := q.reserve(tx(2), "u", "t2"); err != nil {
		t.Fatal(err)
	}
	q.opened("r2", nil)
	q.confirmed(tx(2), "t2", "r2")
	if err := q.reserve(tx(2), "u", "t2"); err != nil {
		t.Fatalf("retransmission at the quota: %v", err)
	}
	// The allocation ended before pion saw the retransmission; pion made a
	// new one, which counts though the user is at the quota.
	q.closed("r2")
	q.opened("r3", nil)
	q.confirmed(tx(2), "t2", "r3")
	if u, total := q.usage("u"); u != 1 || total != 2 {
		t.Fatalf("usage = %d, %d; want 1, 2", u, total)
	}
	q.closed("r1")
	q.closed("r3")
	if u, total := q.usage("u"); u != 0 || total != 0 {
		t.Fatalf("usage after close = %d, %d; want 0, 0", u, total)
	}
}
