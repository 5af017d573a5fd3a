package udpstats

import (
	"bufio"
	"net"
	"strings"
	"testing"
	"time"
)

func TestParseDrops(t *testing.T) {
	const table = `   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  818: 0100007F:1F42 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 111 2 0000000000000000 7
  819: 0100007F:1F43 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 222 2 0000000000000000 40
  820: 0100007F:1F44 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 333 2 0000000000000000 1000
`
	n, err := parseDrops(bufio.NewScanner(strings.NewReader(table)), map[string]bool{"111": true, "222": true})
	if err != nil || n != 47 {
		t.Fatalf("drops = %d, %v; want 47 (not the other process's 1000)", n, err)
	}
}

func TestParseSNMP(t *testing.T) {
	const snmp = "Ip: Forwarding DefaultTTL\nIp: 1 64\nUdp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors\nUdp: 10 1 5 9 4 2 0\nUdpLite: InDatagrams\nUdpLite: 0\n"
	h, err := parseSNMP(snmp)
	if err != nil || h != (Host{InErrors: 5, RcvbufErrors: 4, SndbufErrors: 2}) {
		t.Fatalf("host = %+v, %v", h, err)
	}
}

// A socket nobody reads overflows: its drops show as this process's own.
func TestOwnDropsCountsOwnSockets(t *testing.T) {
	rx, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer rx.Close()
	_ = rx.SetReadBuffer(4096)
	tx, err := net.DialUDP("udp4", nil, rx.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	before, err := OwnDrops()
	if err != nil {
		t.Fatal(err)
	}
	h0, err := HostCounters()
	if err != nil {
		t.Fatal(err)
	}
	pkt := make([]byte, 1000)
	for range 500 {
		_, _ = tx.Write(pkt)
	}
	time.Sleep(10 * time.Millisecond)
	after, err := OwnDrops()
	if err != nil {
		t.Fatal(err)
	}
	h1, _ := HostCounters()
	if after-before < 100 {
		t.Fatalf("own drops %d -> %d after 500 datagrams to a 4 KiB buffer", before, after)
	}
	if d := h1.Sub(h0); d.RcvbufErrors < after-before {
		t.Errorf("host RcvbufErrors rose by %d, own drops by %d", d.RcvbufErrors, after-before)
	}
	if SelfCPU().Total() <= 0 {
		t.Error("no CPU time")
	}
}
