package sfu

import (
	"bytes"
	"testing"
	"time"

	"github.com/pion/rtp"
)

func TestPacketCache(t *testing.T) {
	var c packetCache
	buf := make([]byte, 1500)
	t0 := time.Unix(1000, 0)
	for seq := uint16(65000); seq != 200; seq++ { // wraps around
		c.put(&rtp.Header{SequenceNumber: seq, Timestamp: uint32(seq)}, []byte{byte(seq), byte(seq >> 8)}, t0.Add(time.Duration(seq)))
	}
	h, p, at, ok := c.get(199, buf)
	if !ok || h.SequenceNumber != 199 || !bytes.Equal(p, []byte{199, 0}) || !at.Equal(t0.Add(199)) {
		t.Fatalf("get(199) = %v %v %v %v", h, p, at, ok)
	}
	if _, _, _, ok := c.get(65535, buf); !ok {
		t.Fatal("packet from before the wrap is gone")
	}
	old := uint16(200)
	old -= cacheSize + 1
	if _, _, _, ok := c.get(old, buf); ok {
		t.Fatal("packet older than the cache returned")
	}
	if _, _, _, ok := c.get(300, buf); ok {
		t.Fatal("packet never stored returned")
	}
}
