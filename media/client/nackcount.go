package client

import (
	"sync/atomic"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
)

// nackCounter is an interceptor that counts the NACKs a client sends (pion's
// NACK generator writes them through it) and the packets they ask for.
type nackCounter struct {
	interceptor.NoOp
	nacks, packets *atomic.Uint64
}

// nackCounterFactory makes the client's nackCounter for each peer connection.
type nackCounterFactory struct{ nacks, packets *atomic.Uint64 }

func (f nackCounterFactory) NewInterceptor(string) (interceptor.Interceptor, error) {
	return &nackCounter{nacks: f.nacks, packets: f.packets}, nil
}

func (c *nackCounter) BindRTCPWriter(w interceptor.RTCPWriter) interceptor.RTCPWriter {
	return interceptor.RTCPWriterFunc(func(pkts []rtcp.Packet, attrs interceptor.Attributes) (int, error) {
		for _, p := range pkts {
			if n, ok := p.(*rtcp.TransportLayerNack); ok {
				c.nacks.Add(1)
				for _, pair := range n.Nacks {
					c.packets.Add(uint64(1 + popcount16(uint16(pair.LostPackets))))
				}
			}
		}
		return w.Write(pkts, attrs)
	})
}

func popcount16(x uint16) int {
	n := 0
	for ; x != 0; x &= x - 1 {
		n++
	}
	return n
}

// NACKsSent returns the NACK packets the client sent and the packets they
// asked to be resent.
func (c *Client) NACKsSent() (nacks, packets uint64) {
	return c.nacks.Load(), c.nackedPackets.Load()
}
