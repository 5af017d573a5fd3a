package e2e

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/stun"
	"golang.org/x/sys/unix"
)

// The TURN latency probe: two TURN clients, A and B, each with an allocation
// on the server and a channel to the other's relayed address. A sends a
// ChannelData message every interval carrying a sequence number and its send
// time; B echoes every one at once on its own channel; A records the round
// trip (two crossings of the server each way: A → A's relay → B's relay → B
// and back). Its receive sides are blocking sockets read by goroutines
// locked to their OS threads, not Go's netpoller, so that the probe adds as
// little latency of its own as it can: the figures are microseconds, where
// turnutils_uclient's are whole milliseconds.
const (
	probePayload     = 100 // ChannelData payload bytes, as uclient's -l 100
	probeChannelA    = 0x4001
	probeChannelB    = 0x4002
	probeRecvTimeout = 100 * time.Millisecond // SO_RCVTIMEO: how soon the receive loops notice stop
	probeDrain       = 200 * time.Millisecond // replies later than this after stop count as lost
	probeReqTimeout  = 5 * time.Second        // a set-up request's answer, retransmits included
	probeRetransmit  = 500 * time.Millisecond
)

var errProbeTimeout = errors.New("receive timed out")

// probeResult is what the probe measured: round trips in microseconds over
// every reply received (nearest-rank percentiles).
type probeResult struct {
	sent, received, lost        int64
	meanUs, p50Us, p99Us, maxUs float64
	// pings and echoed are the pings A sent and B echoed over the whole
	// run, window or not: the ChannelData messages put through the server.
	pings, echoed int64
}

func (r probeResult) String() string {
	return fmt.Sprintf("sent %d, received %d, lost %d; RTT µs mean %.1f, p50 %.1f, p99 %.1f, max %.1f",
		r.sent, r.received, r.lost, r.meanUs, r.p50Us, r.p99Us, r.maxUs)
}

// probeStats turns the round trips of the replies received into a result.
func probeStats(sent int64, rtts []time.Duration) probeResult {
	r := probeResult{sent: sent, received: int64(len(rtts)), lost: sent - int64(len(rtts))}
	if len(rtts) == 0 {
		return r
	}
	s := slices.Clone(rtts)
	slices.Sort(s)
	var sum time.Duration
	for _, d := range s {
		sum += d
	}
	us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
	rank := func(q float64) time.Duration { return s[max(int(math.Ceil(q*float64(len(s))))-1, 0)] }
	r.meanUs = us(sum) / float64(len(s))
	r.p50Us, r.p99Us, r.maxUs = us(rank(0.50)), us(rank(0.99)), us(s[len(s)-1])
	return r
}

// probeReply is the round trip of one ping.
type probeReply struct {
	seq uint64
	rtt time.Duration
}

// turnProbe is a running probe; stop it to get its result.
type turnProbe struct {
	a, b     *probeClient
	interval time.Duration
	origin   time.Time // send times are monotonic nanoseconds since origin

	sent       atomic.Int64
	from       atomic.Int64 // the first ping the result counts (startWindow)
	windowOnce sync.Once
	stopSend   chan struct{}
	stopRecv   atomic.Bool
	sendDone   sync.WaitGroup
	recvDone   sync.WaitGroup

	errMu sync.Mutex
	err   error

	// Written by the receive loops only, read after they end.
	replies []probeReply
	seen    []bool
	echoed  int64

	stopOnce sync.Once
	result   probeResult
	stopErr  error
}

// startTURNProbe allocates two clients on the TURN server at
// 127.0.0.1:port with TURN REST API credentials minted from secret, binds
// a channel from each to the other's relayed address and starts pinging
// every interval (1 ms when interval is 0). Stop it with stop.
func startTURNProbe(port, secret string, interval time.Duration) (*turnProbe, error) {
	if interval <= 0 {
		interval = time.Millisecond
	}
	p := &turnProbe{interval: interval, origin: time.Now(), stopSend: make(chan struct{})}
	var err error
	if p.a, err = dialProbeClient(port, secret, "probe-a"); err != nil {
		return nil, err
	}
	if p.b, err = dialProbeClient(port, secret, "probe-b"); err != nil {
		p.a.close()
		return nil, err
	}
	if err := p.setUp(); err != nil {
		p.a.close()
		p.b.close()
		return nil, err
	}
	p.recvDone.Add(2)
	go p.receiveReplies()
	go p.echo()
	p.sendDone.Add(1)
	go p.ping()
	return p, nil
}

func (p *turnProbe) setUp() error {
	for _, c := range []*probeClient{p.a, p.b} {
		if err := c.allocate(); err != nil {
			return fmt.Errorf("probe client %s: %w", c.user, err)
		}
	}
	if err := p.a.channelBind(probeChannelA, p.b.relay); err != nil {
		return fmt.Errorf("probe client %s: %w", p.a.user, err)
	}
	if err := p.b.channelBind(probeChannelB, p.a.relay); err != nil {
		return fmt.Errorf("probe client %s: %w", p.b.user, err)
	}
	return nil
}

// stop ends the pings, waits probeDrain for late replies, ends the receive
// loops, releases both allocations (best effort) and returns the result and
// the first error a loop met. It may be called more than once.
func (p *turnProbe) stop() (probeResult, error) {
	p.stopOnce.Do(func() {
		close(p.stopSend)
		p.sendDone.Wait()
		time.Sleep(probeDrain)
		p.stopRecv.Store(true)
		p.recvDone.Wait()
		p.a.release()
		p.b.release()
		p.a.close()
		p.b.close()
		from := p.from.Load()
		var rtts []time.Duration
		for _, r := range p.replies {
			if r.seq >= uint64(from) {
				rtts = append(rtts, r.rtt)
			}
		}
		p.result = probeStats(p.sent.Load()-from, rtts)
		p.result.pings, p.result.echoed = p.sent.Load(), p.echoed
		p.errMu.Lock()
		p.stopErr = p.err
		p.errMu.Unlock()
	})
	return p.result, p.stopErr
}

// startWindow makes the result count only the pings sent from now on (all
// of them when it is not called); later calls do nothing. The echoes
// count from the start all the same.
func (p *turnProbe) startWindow() {
	p.windowOnce.Do(func() { p.from.Store(p.sent.Load()) })
}

func (p *turnProbe) fail(err error) {
	p.errMu.Lock()
	defer p.errMu.Unlock()
	if p.err == nil {
		p.err = err
	}
}

// ping sends A's ChannelData every interval: sequence number, then the send
// time, then zeros.
func (p *turnProbe) ping() {
	defer p.sendDone.Done()
	msg := make([]byte, 4+probePayload)
	binary.BigEndian.PutUint16(msg[0:], probeChannelA)
	binary.BigEndian.PutUint16(msg[2:], probePayload)
	t := time.NewTicker(p.interval)
	defer t.Stop()
	for seq := uint64(0); ; seq++ {
		select {
		case <-p.stopSend:
			return
		case <-t.C:
		}
		binary.BigEndian.PutUint64(msg[4:], seq)
		p.sent.Store(int64(seq) + 1) // before sending: a reply never names an unsent seq
		binary.BigEndian.PutUint64(msg[12:], uint64(time.Since(p.origin)))
		if err := probeSend(p.a.fd, msg); err != nil {
			p.fail(fmt.Errorf("probe ping: %w", err))
			return
		}
	}
}

// receiveReplies reads B's echoes on A's socket and records round trips.
func (p *turnProbe) receiveReplies() {
	defer p.recvDone.Done()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	buf := make([]byte, 1500)
	for !p.stopRecv.Load() {
		n, err := probeRecv(p.a.fd, buf)
		now := time.Since(p.origin)
		if errors.Is(err, errProbeTimeout) {
			continue
		}
		if err != nil {
			p.fail(fmt.Errorf("probe receive: %w", err))
			return
		}
		if n < 4+16 || binary.BigEndian.Uint16(buf) != probeChannelA {
			continue // not our ChannelData (a late STUN answer, say)
		}
		seq := binary.BigEndian.Uint64(buf[4:])
		if seq >= uint64(p.sent.Load()) {
			continue
		}
		if seq >= uint64(len(p.seen)) {
			p.seen = append(p.seen, make([]bool, int(seq)+1-len(p.seen)+1024)...)
		}
		if p.seen[seq] {
			continue
		}
		p.seen[seq] = true
		p.replies = append(p.replies, probeReply{seq, now - time.Duration(binary.BigEndian.Uint64(buf[12:]))})
	}
}

// echo sends every ChannelData B receives back unchanged: B's channel
// number is the one the server gives it, and it leads to A's relay.
func (p *turnProbe) echo() {
	defer p.recvDone.Done()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	buf := make([]byte, 1500)
	for !p.stopRecv.Load() {
		n, err := probeRecv(p.b.fd, buf)
		if errors.Is(err, errProbeTimeout) {
			continue
		}
		if err != nil {
			p.fail(fmt.Errorf("probe echo receive: %w", err))
			return
		}
		if n < 4 || binary.BigEndian.Uint16(buf) != probeChannelB {
			continue
		}
		if err := probeSend(p.b.fd, buf[:n]); err != nil {
			p.fail(fmt.Errorf("probe echo: %w", err))
			return
		}
		p.echoed++
	}
}

// probeRecv reads one datagram from a blocking socket, errProbeTimeout
// after SO_RCVTIMEO. Go's signals (preemption) interrupt a receive with a
// timeout: it is restarted.
func probeRecv(fd int, buf []byte) (int, error) {
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		switch {
		case err == nil:
			return n, nil
		case errors.Is(err, unix.EINTR):
		case errors.Is(err, unix.EAGAIN):
			return 0, errProbeTimeout
		default:
			return 0, fmt.Errorf("recvfrom: %w", err)
		}
	}
}

// probeSend writes one datagram on a connected socket.
func probeSend(fd int, b []byte) error {
	for {
		_, err := unix.Write(fd, b)
		if !errors.Is(err, unix.EINTR) {
			if err != nil {
				return fmt.Errorf("send: %w", err)
			}
			return nil
		}
	}
}

// probeClient is one TURN client on a blocking UDP socket connected to the
// server.
type probeClient struct {
	fd                 int
	server             string
	user               string
	username, password string
	realm              stun.Realm
	nonce              stun.Nonce
	relay              stun.XORMappedAddress
}

func dialProbeClient(port, secret, user string) (*probeClient, error) {
	p, err := strconv.Atoi(port)
	if err != nil {
		return nil, fmt.Errorf("probe: server port %q: %w", port, err)
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		return nil, fmt.Errorf("probe: socket: %w", err)
	}
	c := &probeClient{fd: fd, server: "127.0.0.1:" + port, user: user}
	if err := c.setUp(p); err != nil {
		c.close()
		return nil, err
	}
	// TURN REST API credentials, as coturn's use-auth-secret has them.
	c.username = strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10) + ":" + user
	mac := hmac.New(sha1.New, []byte(secret))
	mac.Write([]byte(c.username))
	c.password = base64.StdEncoding.EncodeToString(mac.Sum(nil))
	return c, nil
}

// setUp gives the socket its receive timeout, binds it to a loopback port
// and connects it to the server's.
func (c *probeClient) setUp(port int) error {
	tv := unix.NsecToTimeval(probeRecvTimeout.Nanoseconds())
	if err := unix.SetsockoptTimeval(c.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return fmt.Errorf("probe: SO_RCVTIMEO: %w", err)
	}
	loopback := [4]byte{127, 0, 0, 1}
	if err := unix.Bind(c.fd, &unix.SockaddrInet4{Addr: loopback}); err != nil {
		return fmt.Errorf("probe: bind 127.0.0.1:0: %w", err)
	}
	if err := unix.Connect(c.fd, &unix.SockaddrInet4{Addr: loopback, Port: port}); err != nil {
		return fmt.Errorf("probe: connect %s: %w", c.server, err)
	}
	return nil
}

func (c *probeClient) close() { _ = unix.Close(c.fd) }

var requestedUDP = stun.RawAttribute{Type: stun.AttrRequestedTransport, Value: []byte{17, 0, 0, 0}}

// allocate asks for a UDP allocation: unauthenticated first, to learn the
// realm and nonce from the 401, then with credentials.
func (c *probeClient) allocate() error {
	allocate := stun.NewType(stun.MethodAllocate, stun.ClassRequest)
	res, err := c.request(probeReqTimeout, allocate, requestedUDP)
	if err != nil {
		return fmt.Errorf("allocate: %w", err)
	}
	var code stun.ErrorCodeAttribute
	if res.Type.Class != stun.ClassErrorResponse || code.GetFrom(res) != nil || code.Code != stun.CodeUnauthorized {
		return fmt.Errorf("allocate without credentials: want a 401, got %v", res)
	}
	if err := c.realm.GetFrom(res); err != nil {
		return fmt.Errorf("allocate: 401 without REALM: %w", err)
	}
	if err := c.nonce.GetFrom(res); err != nil {
		return fmt.Errorf("allocate: 401 without NONCE: %w", err)
	}
	res, err = c.authRequest(probeReqTimeout, allocate, requestedUDP)
	if err != nil {
		return fmt.Errorf("allocate: %w", err)
	}
	if err := c.relay.GetFromAs(res, stun.AttrXORRelayedAddress); err != nil {
		return fmt.Errorf("allocate: answer without XOR-RELAYED-ADDRESS: %w", err)
	}
	return nil
}

// channelBind binds channel to peer (which also permits it).
func (c *probeClient) channelBind(channel uint16, peer stun.XORMappedAddress) error {
	number := stun.RawAttribute{Type: stun.AttrChannelNumber, Value: []byte{byte(channel >> 8), byte(channel), 0, 0}}
	if _, err := c.authRequest(probeReqTimeout, stun.NewType(stun.MethodChannelBind, stun.ClassRequest),
		number, xorAddressAs{peer, stun.AttrXORPeerAddress}); err != nil {
		return fmt.Errorf("channel bind %#x to %v: %w", channel, peer, err)
	}
	return nil
}

// release deletes the allocation (Refresh with LIFETIME 0), best effort.
func (c *probeClient) release() {
	if c.realm == nil {
		return
	}
	lifetime := stun.RawAttribute{Type: stun.AttrLifetime, Value: []byte{0, 0, 0, 0}}
	_, _ = c.authRequest(probeRetransmit, stun.NewType(stun.MethodRefresh, stun.ClassRequest), lifetime)
}

// authRequest sends an authenticated request and wants a success answer;
// on 438 Stale Nonce it retries once with the new nonce.
func (c *probeClient) authRequest(timeout time.Duration, t stun.MessageType, attrs ...stun.Setter) (*stun.Message, error) {
	for attempt := 0; ; attempt++ {
		setters := append(append([]stun.Setter{t}, attrs...),
			stun.NewUsername(c.username), c.realm, c.nonce,
			stun.NewLongTermIntegrity(c.username, c.realm.String(), c.password), stun.Fingerprint)
		res, err := c.request(timeout, setters...)
		if err != nil {
			return nil, err
		}
		if res.Type.Class == stun.ClassSuccessResponse {
			return res, nil
		}
		var code stun.ErrorCodeAttribute
		if code.GetFrom(res) == nil && code.Code == stun.CodeStaleNonce && attempt == 0 {
			if err := c.nonce.GetFrom(res); err != nil {
				return nil, fmt.Errorf("438 without NONCE: %w", err)
			}
			continue
		}
		return nil, fmt.Errorf("%v refused: %v", t, code)
	}
}

// request sends a STUN request and returns the answer with its transaction
// ID, retransmitting every probeRetransmit until timeout.
func (c *probeClient) request(timeout time.Duration, setters ...stun.Setter) (*stun.Message, error) {
	req, err := stun.Build(append([]stun.Setter{stun.TransactionID}, setters...)...)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	buf := make([]byte, 1500)
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if err := probeSend(c.fd, req.Raw); err != nil {
			return nil, fmt.Errorf("%v to %s: %w", req.Type, c.server, err)
		}
		for resend := time.Now().Add(probeRetransmit); time.Now().Before(resend); {
			n, err := probeRecv(c.fd, buf)
			if errors.Is(err, errProbeTimeout) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("%v to %s: %w", req.Type, c.server, err)
			}
			if !stun.IsMessage(buf[:n]) {
				continue
			}
			res := &stun.Message{Raw: append([]byte(nil), buf[:n]...)}
			if res.Decode() != nil || res.TransactionID != req.TransactionID {
				continue
			}
			return res, nil
		}
	}
	return nil, fmt.Errorf("%v: no answer from %s in %v", req.Type, c.server, timeout)
}

// xorAddressAs adds an XOR address as another attribute type than
// XOR-MAPPED-ADDRESS (XOR-PEER-ADDRESS here).
type xorAddressAs struct {
	addr stun.XORMappedAddress
	t    stun.AttrType
}

func (a xorAddressAs) AddTo(m *stun.Message) error { return a.addr.AddToAs(m, a.t) }

// TestTURNProbe runs the latency probe for about 300 ms (after 50 ms left
// out of the result) against `meeting turn` and against coturn's
// turnserver, as BenchmarkTURNPressure does, after checking that a wrong
// secret gets no allocation.
func TestTURNProbe(t *testing.T) {
	const secret = "e2e-probe-secret"
	for _, tc := range []struct {
		name  string
		start func(t *testing.T) string // the server's UDP port
	}{
		{"meeting turn", func(t *testing.T) string {
			_, port, _ := meetingTURN(t, secret)
			return port
		}},
		{"coturn", func(t *testing.T) string {
			_, port, _ := startCoturn(t, needTool(t, "turnserver"), secret)
			return port
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			port := tc.start(t)
			if p, err := startTURNProbe(port, "not-the-secret", time.Millisecond); err == nil {
				_, _ = p.stop()
				t.Fatal("probe allocated with a wrong secret")
			} else {
				t.Logf("wrong secret: %v", err)
			}
			p, err := startTURNProbe(port, secret, time.Millisecond)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _, _ = p.stop() }()
			time.Sleep(50 * time.Millisecond)
			p.startWindow() // the result counts the next 300 ms
			time.Sleep(300 * time.Millisecond)
			r, err := p.stop()
			if err != nil {
				t.Fatalf("%v (%v)", err, r)
			}
			t.Log(r)
			if r.received <= 0 || 10*r.received < 9*r.sent {
				t.Errorf("received %d of %d pings, want at least 90 %%", r.received, r.sent)
			}
			if r.lost != r.sent-r.received {
				t.Errorf("lost %d, want sent − received = %d", r.lost, r.sent-r.received)
			}
			if r.pings <= r.sent {
				t.Errorf("%d pings in all, %d counted: want the ones before startWindow left out", r.pings, r.sent)
			}
			if r.echoed < r.received {
				t.Errorf("B echoed %d pings, A received %d replies", r.echoed, r.received)
			}
			if !(r.meanUs > 0 && r.p50Us <= r.p99Us && r.p99Us <= r.maxUs) {
				t.Errorf("want mean > 0 and p50 ≤ p99 ≤ max: %v", r)
			}
		})
	}
}

func TestProbeStats(t *testing.T) {
	us := time.Microsecond
	hundred := make([]time.Duration, 100) // 100 µs … 1 µs, unsorted
	for i := range hundred {
		hundred[i] = time.Duration(100-i) * us
	}
	for _, tc := range []struct {
		name string
		sent int64
		rtts []time.Duration
		want probeResult
	}{
		{"nothing received", 5, nil, probeResult{sent: 5, lost: 5}},
		{"one", 1, []time.Duration{1500 * time.Nanosecond}, probeResult{sent: 1, received: 1, meanUs: 1.5, p50Us: 1.5, p99Us: 1.5, maxUs: 1.5}},
		{"nearest rank", 4, []time.Duration{4 * us, 1 * us, 3 * us}, probeResult{sent: 4, received: 3, lost: 1, meanUs: 8.0 / 3, p50Us: 3, p99Us: 4, maxUs: 4}},
		{"hundred", 100, hundred, probeResult{sent: 100, received: 100, meanUs: 50.5, p50Us: 50, p99Us: 99, maxUs: 100}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := probeStats(tc.sent, tc.rtts)
			if math.Abs(got.meanUs-tc.want.meanUs) > 1e-9 {
				t.Errorf("mean %v µs, want %v", got.meanUs, tc.want.meanUs)
			}
			got.meanUs = tc.want.meanUs
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}
