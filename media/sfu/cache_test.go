package sfu

import (
	"bytes"
	"testing"

	"github.com/pion/rtp"
)

func TestPacketCache(t *testing.T) {
	var c packetCache
	buf := make([]byte, 1500)
	for seq := uint16(65000); seq != 200; seq++ { // wraps around
		c.put(&rtp.Header{SequenceNumber: seq, Timestamp: uint32(seq)}, []byte{byte(seq), byte(seq >> 8)})
	}
	h, p, ok := c.get(199, buf)
	if !ok || h.SequenceNumber != 199 || !bytes.Equal(p, []byte{199, 0}) {
		t.Fatalf("get(199) = %v %v %v", h, p, ok)
	}
	if _, _, ok := c.get(65535, buf); !ok {
		t.Fatal("packet from before the wrap is gone")
	}
	old := uint16(200)
	old -= cacheSize + 1
	if _, _, ok := c.get(old, buf); ok {
		t.Fatal("packet older than the cache returned")
	}
	if _, _, ok := c.get(300, buf); ok {
		t.Fatal("packet never stored returned")
	}
}
