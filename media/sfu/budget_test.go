package sfu

import (
	"testing"
	"time"
)

func TestBucketShareAndRate(t *testing.T) {
	t0 := time.Unix(1000, 0)
	b := newBucket(0.1, 5, 100)
	b.refill(0, t0) // starts with the burst
	for range 5 {
		if !b.has() {
			t.Fatal("a new bucket does not hold its burst")
		}
		b.take()
	}
	if b.has() {
		t.Fatal("credit beyond the burst")
	}
	b.refill(30, t0) // 3 tokens of share
	n := 0
	for b.has() {
		b.take()
		n++
	}
	if n != 3 {
		t.Fatalf("30 packets at 10%% gave %d retransmissions, want 3", n)
	}
	b.refill(1030, t0) // 100 tokens of share, held to the burst of 5
	if b.credit != 5 {
		t.Fatalf("credit %v, want the burst 5", b.credit)
	}
	// The rate: 100/s; the first second's 100 tokens minus the 3 taken.
	b = newBucket(1, 1000, 100)
	b.refill(1000, t0)
	n = 0
	for b.has() {
		b.take()
		n++
	}
	if n != 100 {
		t.Fatalf("rate 100/s allowed %d at once, want 100", n)
	}
	b.refill(1000, t0.Add(50*time.Millisecond))
	n = 0
	for b.has() {
		b.take()
		n++
	}
	if n != 5 {
		t.Fatalf("50 ms at 100/s allowed %d, want 5", n)
	}
}

func TestRetransmitBudgetOncePerPacket(t *testing.T) {
	t0 := time.Unix(1000, 0)
	var r retransmitBudget
	sent := uint64(1000) // plenty of credit
	if got := r.allow(7, sent, t0, nil); got != resend {
		t.Fatalf("first NACK of 7: %v", got)
	}
	for i := range 3 {
		if got := r.allow(7, sent, t0.Add(time.Duration(i)*time.Millisecond), nil); got != refusedRepeated {
			t.Fatalf("NACK %d of 7: %v, want repeated", i+2, got)
		}
	}
	if got := r.allow(8, sent, t0, nil); got != resend {
		t.Fatalf("8: %v", got)
	}
	// cacheSize later the slot holds another packet: that one may be resent.
	if got := r.allow(7+cacheSize, sent, t0, nil); got != resend {
		t.Fatalf("7+cacheSize: %v", got)
	}
}

func TestRetransmitBudgetShare(t *testing.T) {
	t0 := time.Unix(1000, 0)
	var r retransmitBudget
	r.allow(0, 0, t0, nil) // starts the bucket at 0 forwarded
	// 10 000 packets forwarded, each NACKed once: the binding gets at most
	// the burst at once, then 10 % of what is forwarded after.
	var sent uint64
	resent := 0
	for seq := range 10000 {
		sent++
		at := t0.Add(time.Duration(seq) * 8 * time.Millisecond) // 125 packets/s
		if r.allow(uint16(seq), sent, at, nil) == resend {
			resent++
		}
	}
	if max := int(bindingShare*10000) + 2*bindingBurst; resent > max || resent < int(bindingShare*10000)-1 {
		t.Fatalf("resent %d of 10000 NACKed, want about %d", resent, int(bindingShare*10000))
	}
}

func TestTotalBudgetBoundsEveryBinding(t *testing.T) {
	t0 := time.Unix(1000, 0)
	total := newTotalBudget()
	total.forwarded.Store(20000)
	// Fifty bindings, each with ample credit of its own, NACK every packet.
	bs := make([]retransmitBudget, 50)
	for i := range bs {
		bs[i].allow(0, 0, t0, nil)
	}
	resent, byTotal := 0, 0
	for seq := 1; seq < 200; seq++ {
		for i := range bs {
			switch bs[i].allow(uint16(seq), 1<<20, t0.Add(time.Second), total) {
			case resend:
				resent++
			case refusedTotal:
				byTotal++
			}
		}
	}
	if resent > totalBurst {
		t.Fatalf("resent %d, want at most the burst %d", resent, totalBurst)
	}
	if byTotal == 0 {
		t.Fatal("the total budget refused nothing")
	}
}
