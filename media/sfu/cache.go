package sfu

import (
	"sync"
	"time"

	"github.com/pion/rtp"
)

// cacheSize is how many recent packets of a video track are kept for
// retransmission: about two seconds of 1 Mbit/s video.
const cacheSize = 256

// packetCache keeps the recent packets of one published track so that NACKs
// from any subscriber are answered from one copy, instead of the copy per
// subscriber that pion's NACK responder interceptor keeps.
type packetCache struct {
	mu    sync.Mutex
	slots [cacheSize]cacheSlot
}

type cacheSlot struct {
	ok  bool
	at  time.Time // when the packet arrived from the publisher
	hdr rtp.Header
	n   int
	buf [1500]byte
}

// put stores a packet that arrived at at; hdr must carry no extensions.
func (c *packetCache) put(hdr *rtp.Header, payload []byte, at time.Time) {
	if len(payload) > len(c.slots[0].buf) {
		return
	}
	c.mu.Lock()
	s := &c.slots[hdr.SequenceNumber%cacheSize]
	s.ok = true
	s.at = at
	s.hdr = *hdr
	s.n = copy(s.buf[:], payload)
	c.mu.Unlock()
}

// get copies the packet with sequence number seq into dst, if still kept,
// and says when it arrived.
func (c *packetCache) get(seq uint16, dst []byte) (rtp.Header, []byte, time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := &c.slots[seq%cacheSize]
	if !s.ok || s.hdr.SequenceNumber != seq {
		return rtp.Header{}, nil, time.Time{}, false
	}
	n := copy(dst, s.buf[:s.n])
	return s.hdr, dst[:n], s.at, true
}
