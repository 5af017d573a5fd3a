package client

import (
	"testing"
	"time"

	"github.com/pion/rtp"
)

func TestReceivedCountsLossAcrossWrap(t *testing.T) {
	r := &Received{}
	now := time.Now()
	payload := make([]byte, 40)
	putTrailer(payload, now.Add(-3*time.Millisecond))
	seqs := []uint16{65530, 65531, 65533, 65535, 0, 1, 4, 3, 5} // 65532, 65534, 2 lost; 3 reordered
	for _, s := range seqs {
		r.add(&rtp.Packet{Header: rtp.Header{SequenceNumber: s}, Payload: payload}, now)
	}
	st := r.Stats()
	if st.Packets != uint64(len(seqs)) || st.Lost != 3 || st.LastSeq != 5 {
		t.Fatalf("stats = packets %d lost %d last %d, want %d, 3, 5", st.Packets, st.Lost, st.LastSeq, len(seqs))
	}
	if len(st.Latencies) != len(seqs) || st.Latencies[0] != 3*time.Millisecond {
		t.Fatalf("latencies = %v", st.Latencies)
	}
	r.Reset()
	if st := r.Stats(); st.Packets != 0 || st.Lost != 0 || len(st.Latencies) != 0 {
		t.Fatalf("after reset: %+v", st)
	}
}

func TestTrailer(t *testing.T) {
	if _, ok := readTrailer([]byte("short")); ok {
		t.Fatal("short payload has a trailer")
	}
	p := make([]byte, 64)
	if _, ok := readTrailer(p); ok {
		t.Fatal("zero payload has a trailer")
	}
	at := time.Unix(1_800_000_000, 123)
	putTrailer(p, at)
	if got, ok := readTrailer(p); !ok || !got.Equal(at) {
		t.Fatalf("readTrailer = %v %v", got, ok)
	}
}
