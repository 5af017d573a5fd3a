package turn

import (
	"errors"
	"testing"
	"time"
)

func tx(b byte) [12]byte { return [12]byte{b} }

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
	q.confirmed(tx(1), "127.0.0.1:50000")
	q.refused(tx(2))
	if u, total := q.usage("alice"); u != 1 || total != 2 {
		t.Fatalf("usage = %d, %d; want 1, 2", u, total)
	}
	if !q.allocated("t1") || q.allocated("t2") {
		t.Fatal("allocated() does not track the 5-tuple of the allocation")
	}
	// A cached success to a retransmission is not counted twice.
	q.confirmed(tx(1), "127.0.0.1:50000")
	if u, _ := q.usage("alice"); u != 1 {
		t.Fatalf("usage after duplicate success = %d", u)
	}
	q.closed("127.0.0.1:50000")
	if u, _ := q.usage("alice"); u != 0 || q.allocated("t1") {
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
	q.confirmed(tx(1), "r")
	if u, total := q.usage("u"); u != 0 || total != 0 {
		t.Fatalf("usage = %d, %d", u, total)
	}
}
