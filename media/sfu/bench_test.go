//go:build linux

package sfu

import (
	"bufio"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"golang.org/x/sys/unix"

	"meeting.dev/meeting/media/client"
	"meeting.dev/meeting/media/internal/udpstats"

	"meeting.dev/meeting/test/testbin"
)

// The forwarding benchmarks run the SFU in this process and the load
// (`meeting loadtest`: publishers and subscribers, real pion peers) in a
// child process, so that getrusage(RUSAGE_SELF) over the measurement window
// is the SFU's CPU alone. Each runs one load test whatever b.N is (run them
// with -benchtime 1x); the figures are reported as metrics and printed.
//
// The floor is the same packet stream fanned out by a plain loop: read one
// UDP packet, write it to every receiver from one socket (as the SFU's one
// ICE port does), with the loop's own thread CPU from getrusage(RUSAGE_THREAD).

// benchWindow is the measurement window: 10 s, or $SFU_BENCH_WINDOW (a
// duration, for a quick check of the harness).
var benchWindow = func() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("SFU_BENCH_WINDOW")); err == nil && d > 0 {
		return d
	}
	return 10 * time.Second
}()

func BenchmarkForwardVideo2x60(b *testing.B) {
	benchForward(b, 2, 60, "--video")
}

func BenchmarkForwardAudio5x50(b *testing.B) {
	benchForward(b, 5, 50, "--audio")
}

// The loads of issue 12, quiet and with a busy loop pinned to each core
// (a noisy neighbour): a 10-person call in which everyone publishes audio
// and video, and 2 video publishers to 120 subscribers.
func BenchmarkPressure10x10Quiet(b *testing.B) { benchLoad(b, call10x10(false)) }
func BenchmarkPressure10x10Busy(b *testing.B)  { benchLoad(b, call10x10(true)) }
func BenchmarkPressure2x120Quiet(b *testing.B) { benchLoad(b, video2x120(false)) }
func BenchmarkPressure2x120Busy(b *testing.B)  { benchLoad(b, video2x120(true)) }

func call10x10(busy bool) loadBench {
	return loadBench{name: "10 x 10 (everyone publishes audio+video)", pubs: 10, media: []string{"--audio", "--video"}, busy: busy}
}

func video2x120(busy bool) loadBench {
	return loadBench{name: "2 video x 120 subscribers", pubs: 2, subs: 120, media: []string{"--video"}, busy: busy}
}

// Packet streams of the client's synthetic media (see client.MediaOptions):
// VP8 4000-byte frames at 30/s in 1100-byte packets, Opus 80-byte packets at 50/s.
func BenchmarkFloorUDPFanoutVideo2x60(b *testing.B) {
	benchFloor(b, 2, 60, 4*30, 1000)
}

func BenchmarkFloorUDPFanoutAudio5x50(b *testing.B) {
	benchFloor(b, 5, 50, 50, 80)
}

func cpuTime(who int) time.Duration {
	u, s := cpuSplit(who)
	return u + s
}

// cpuSplit returns user and system CPU time.
func cpuSplit(who int) (user, sys time.Duration) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(who, &ru); err != nil {
		return 0, 0
	}
	return time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano())
}

// startProfile profiles the measurement window into $SFU_BENCH_PROFILE.
func startProfile(b *testing.B) {
	path := os.Getenv("SFU_BENCH_PROFILE")
	if path == "" {
		return
	}
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = f.Close() })
	if err := pprof.StartCPUProfile(f); err != nil {
		b.Fatal(err)
	}
}

func counter(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return 0
	}
	return m.GetCounter().GetValue()
}

func benchForward(b *testing.B, pubs, subs int, media string) {
	benchLoad(b, loadBench{name: fmt.Sprintf("%d publishers x %d subscribers (%s)", pubs, subs, media[2:]),
		pubs: pubs, subs: subs, media: []string{media}})
}

// loadBench is one SFU load: publishers and subscribers of meeting
// loadtest, its media flags, the processes its subscribers run in, and
// whether a busy loop runs pinned to each core meanwhile.
type loadBench struct {
	name       string
	pubs, subs int
	media      []string
	procs      int
	busy       bool
}

// sfuCounters are the SFU's counters at one moment.
type sfuCounters struct {
	cpu, user                 time.Duration
	fwd, retx, nacks, refused float64
	byReason                  [numRefusals]float64
	paused, congestionDropped float64
	sockDrops                 uint64
}

func (s *server) counters(b *testing.B) sfuCounters {
	u, sys := cpuSplit(syscall.RUSAGE_SELF)
	m := s.sfu.m
	c := sfuCounters{cpu: u + sys, user: u, fwd: counter(m.packets), retx: counter(m.retransmits), nacks: counter(m.nacks),
		paused: counter(m.congestion.WithLabelValues(congestionPaused)), congestionDropped: counter(m.congestionDropped)}
	for r := refusal(1); r < numRefusals; r++ {
		c.byReason[r] = counter(m.refused[r])
		c.refused += c.byReason[r]
	}
	var err error
	if c.sockDrops, err = udpstats.OwnDrops(); err != nil {
		b.Logf("SFU socket drops unknown: %v", err)
	}
	return c
}

func benchLoad(b *testing.B, lb loadBench) {
	bin := testbin.Meeting(b)
	s := startSFU(b, Config{MaxParticipants: lb.pubs + lb.subs, Logger: slog.New(slog.DiscardHandler)})
	if lb.procs == 0 {
		lb.procs = 1
		if p, err := strconv.Atoi(os.Getenv("SFU_BENCH_PROCS")); err == nil && p > 0 && lb.subs > 0 {
			lb.procs = p
		}
	}
	b.ResetTimer()
	for range b.N {
		stopBusy := func() {}
		if lb.busy {
			stopBusy = testbin.BusyLoops(b)
		}
		args := []string{"loadtest", "--json", "--log-level", "warn",
			"--url", s.url, "--token-key", string(testKey), "--room", "bench",
			"--publishers", fmt.Sprint(lb.pubs), "--subscribers", fmt.Sprint(lb.subs),
			"--duration", benchWindow.String(), "--settle", "2s", "--procs", fmt.Sprint(lb.procs)}
		cmd := exec.Command(bin, append(args, lb.media...)...)
		cmd.Stderr = os.Stderr
		cmd.Env = append(os.Environ(), "MEETING_LOADTEST_EXE="+bin)
		out, err := cmd.StdoutPipe()
		if err != nil {
			b.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		var (
			c0, c1    sfuCounters
			res       client.LoadResult
			gotResult bool
		)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var ev struct {
				Event string `json:"event"`
				client.LoadResult
			}
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
				b.Fatalf("loadtest printed %q: %v", sc.Text(), err)
			}
			switch ev.Event {
			case "window_open":
				startProfile(b)
				c0 = s.counters(b)
			case "window_closed":
				c1 = s.counters(b)
				pprof.StopCPUProfile()
			case "result":
				res, gotResult = ev.LoadResult, true
			}
		}
		err = cmd.Wait()
		stopBusy()
		if err != nil || !gotResult {
			b.Fatalf("loadtest: %v (result: %v)", err, gotResult)
		}
		win := res.Window.Seconds()
		fwd := c1.fwd - c0.fwd
		cpu := c1.cpu - c0.cpu
		perPkt := float64(cpu.Microseconds()) / fwd
		loss := 100 * res.LossRatio
		retx := c1.retx - c0.retx
		b.ReportMetric(perPkt, "cpu-µs/fwd-pkt")
		b.ReportMetric(loss, "loss-%")
		b.ReportMetric(fwd/win, "fwd-pkts/s")
		b.ReportMetric(float64(res.LatencyP99.Microseconds()), "p99-µs")
		b.ReportMetric(100*retx/fwd, "retx-%")
		var why []string
		for r := refusal(1); r < numRefusals; r++ {
			if n := c1.byReason[r] - c0.byReason[r]; n > 0 {
				why = append(why, fmt.Sprintf("%s %.0f", r, n))
			}
		}
		cond := "quiet"
		if lb.busy {
			cond = fmt.Sprintf("busy loop on each of %d cores", runtime.NumCPU())
		}
		fmt.Printf("SFU %s, %s: %.0f forwarded packets/s, loss %.4f%% (%d of %d), retransmitted %.2f%% of forwarded (%.0f; %.0f NACKs received, %.0f NACKed packets refused%s), "+
			"latency p50 %s p99 %s, %.2f µs CPU per forwarded packet (SFU CPU %.1f%% of a core, user %.0f%%), "+
			"socket drops: SFU %d, load tool %d, host RcvbufErrors +%d InErrors +%d; video pauses %.0f (%.0f packets not forwarded); "+
			"load tool: %d process(es), CPU %.0f%% of a core, %d NACKs sent for %d packets\n",
			lb.name, cond, fwd/win, loss, res.Lost, res.Received+res.Lost, 100*retx/fwd, retx, c1.nacks-c0.nacks, c1.refused-c0.refused, reasons(why),
			res.LatencyP50.Round(time.Microsecond), res.LatencyP99.Round(time.Microsecond), perPkt, 100*cpu.Seconds()/win,
			100*(c1.user-c0.user).Seconds()/cpu.Seconds(),
			c1.sockDrops-c0.sockDrops, res.OwnSocketDrops, res.HostRcvbufErrors, res.HostInErrors, c1.paused-c0.paused, c1.congestionDropped-c0.congestionDropped,
			res.Procs, 100*res.CPU.Seconds()/win, res.NACKsSent, res.NACKedPackets)
	}
}

// benchFloor fans out streams×rate packets/s of size bytes to fanout+streams-1
// receivers (each packet reaches everyone but its sender, as in the SFU).
func benchFloor(b *testing.B, streams, subs, rate, size int) {
	fanout := subs + streams - 1
	for range b.N {
		in, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			b.Fatal(err)
		}
		var (
			received atomic.Uint64
			counting atomic.Bool
			dsts     []*net.UDPAddr
			rwg      sync.WaitGroup
			socks    []*net.UDPConn
		)
		for range fanout {
			c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				b.Fatal(err)
			}
			_ = c.SetReadBuffer(1 << 20)
			socks = append(socks, c)
			dsts = append(dsts, c.LocalAddr().(*net.UDPAddr))
			rwg.Add(1)
			go func() {
				defer rwg.Done()
				buf := make([]byte, 1500)
				for {
					if _, err := c.Read(buf); err != nil {
						return
					}
					if counting.Load() {
						received.Add(1)
					}
				}
			}()
		}
		// The loop under test, on its own OS thread.
		var (
			phase      atomic.Int32 // 0 warm-up, 1 measuring, 2 done
			cpu0, cpu1 time.Duration
			in0, in1   uint64
			fwd        = make(chan struct{})
		)
		go func() {
			defer close(fwd)
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			buf := make([]byte, 1500)
			var n uint64
			seen := int32(0)
			for {
				m, err := in.Read(buf)
				if err != nil {
					return
				}
				if p := phase.Load(); p != seen {
					seen = p
					if p == 1 {
						cpu0, in0 = cpuTime(unix.RUSAGE_THREAD), n
					} else {
						cpu1, in1 = cpuTime(unix.RUSAGE_THREAD), n
					}
				}
				n++
				for _, d := range dsts {
					_, _ = in.WriteToUDP(buf[:m], d)
				}
			}
		}()
		// Senders: streams at rate packets/s each, in 10 ms bursts.
		src, err := net.DialUDP("udp4", nil, in.LocalAddr().(*net.UDPAddr))
		if err != nil {
			b.Fatal(err)
		}
		stop := make(chan struct{})
		var swg sync.WaitGroup
		var sent atomic.Uint64
		swg.Add(1)
		go func() {
			defer swg.Done()
			pkt := make([]byte, size)
			tick := time.NewTicker(10 * time.Millisecond)
			defer tick.Stop()
			perTick := float64(streams*rate) / 100
			acc := 0.0
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				acc += perTick
				for ; acc >= 1; acc-- {
					if _, err := src.Write(pkt); err == nil && counting.Load() {
						sent.Add(1)
					}
				}
			}
		}()
		time.Sleep(time.Second)
		counting.Store(true)
		phase.Store(1)
		time.Sleep(benchWindow)
		phase.Store(2)
		counting.Store(false)
		time.Sleep(200 * time.Millisecond)
		close(stop)
		swg.Wait()
		_ = src.Close()
		_ = in.Close()
		<-fwd
		for _, c := range socks {
			_ = c.Close()
		}
		rwg.Wait()
		if cpu1 == 0 {
			b.Fatal("the loop saw no packet after the window")
		}
		forwarded := float64(in1-in0) * float64(fanout)
		perPkt := float64((cpu1 - cpu0).Microseconds()) / forwarded
		want := float64(sent.Load()) * float64(fanout)
		loss := 0.0
		if got := float64(received.Load()); want > 0 && got < want {
			loss = 100 * (want - got) / want
		}
		b.ReportMetric(perPkt, "cpu-µs/fwd-pkt")
		b.ReportMetric(loss, "loss-%")
		fmt.Printf("floor: plain UDP fan-out loop, %d streams x %d packets/s of %d bytes to %d receivers: %.2f µs CPU per forwarded packet, %.0f forwarded packets/s, loss %.4f%%\n",
			streams, rate, size, fanout, perPkt, forwarded/benchWindow.Seconds(), loss)
	}
}

func reasons(why []string) string {
	if len(why) == 0 {
		return ""
	}
	return ": " + strings.Join(why, ", ")
}
