package rawudp

import (
	"net"
	"testing"
)

const isLinux = true

func isWrapped(c net.PacketConn) bool {
	_, ok := c.(*Conn)
	return ok
}

// TestNoAllocations checks that a datagram written and read back, from a
// source seen before, allocates nothing.
func TestNoAllocations(t *testing.T) {
	a, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = a.Close() }()
	b, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = b.Close() }()
	ra, rb := New(a), New(b)
	to := rb.LocalAddr()
	buf := make([]byte, 100)
	msg := []byte("datagram")
	roundTrip := func() {
		if _, err := ra.WriteTo(msg, to); err != nil {
			t.Fatal(err)
		}
		if n, _, err := rb.ReadFrom(buf); err != nil || n != len(msg) {
			t.Fatalf("read %d bytes, %v", n, err)
		}
	}
	roundTrip() // the source's address is made once
	if n := testing.AllocsPerRun(100, roundTrip); n != 0 {
		t.Fatalf("%v allocations per datagram, want 0", n)
	}
}
