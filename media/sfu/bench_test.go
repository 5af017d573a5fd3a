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
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"golang.org/x/sys/unix"

	"meeting.dev/meeting/media/client"
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

const benchWindow = 10 * time.Second

func BenchmarkForwardVideo2x60(b *testing.B) {
	benchForward(b, 2, 60, "--video")
}

func BenchmarkForwardAudio5x50(b *testing.B) {
	benchForward(b, 5, 50, "--audio")
}

// Packet streams of the client's synthetic media (see client.MediaOptions):
// VP8 4000-byte frames at 30/s in 1100-byte packets, Opus 80-byte packets at 50/s.
func BenchmarkFloorUDPFanoutVideo2x60(b *testing.B) {
	benchFloor(b, 2, 60, 4*30, 1000)
}

func BenchmarkFloorUDPFanoutAudio5x50(b *testing.B) {
	benchFloor(b, 5, 50, 50, 80)
}

// meetingBinary returns $MEETING_BIN or builds cmd/meeting.
func meetingBinary(b *testing.B) string {
	if p := os.Getenv("MEETING_BIN"); p != "" {
		return p
	}
	out := filepath.Join(b.TempDir(), "meeting")
	cmd := exec.Command("go", "build", "-o", out, "meeting.dev/meeting/cmd/meeting")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		b.Fatalf("build meeting: %v", err)
	}
	return out
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
	bin := meetingBinary(b)
	s := startSFU(b, Config{MaxParticipants: pubs + subs, Logger: slog.New(slog.DiscardHandler)})
	b.ResetTimer()
	for range b.N {
		cmd := exec.Command(bin, "loadtest", "--json", "--log-level", "warn",
			"--url", s.url, "--token-key", string(testKey), "--room", "bench",
			"--publishers", fmt.Sprint(pubs), "--subscribers", fmt.Sprint(subs), media,
			"--duration", benchWindow.String(), "--settle", "2s")
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			b.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		var (
			cpu0, cpu1 time.Duration
			usr0, usr1 time.Duration
			fwd0, fwd1 float64
			res        client.LoadResult
			gotResult  bool
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
				usr0, _ = cpuSplit(syscall.RUSAGE_SELF)
				cpu0, fwd0 = cpuTime(syscall.RUSAGE_SELF), counter(s.sfu.m.packets)
			case "window_closed":
				usr1, _ = cpuSplit(syscall.RUSAGE_SELF)
				cpu1, fwd1 = cpuTime(syscall.RUSAGE_SELF), counter(s.sfu.m.packets)
				pprof.StopCPUProfile()
			case "result":
				res, gotResult = ev.LoadResult, true
			}
		}
		if err := cmd.Wait(); err != nil || !gotResult {
			b.Fatalf("loadtest: %v (result: %v)", err, gotResult)
		}
		fwd := fwd1 - fwd0
		perPkt := float64((cpu1 - cpu0).Microseconds()) / fwd
		loss := 100 * res.LossRatio
		b.ReportMetric(perPkt, "cpu-µs/fwd-pkt")
		b.ReportMetric(loss, "loss-%")
		b.ReportMetric(fwd/res.Window.Seconds(), "fwd-pkts/s")
		b.ReportMetric(float64(res.LatencyP99.Microseconds()), "p99-µs")
		fmt.Printf("SFU %d publishers x %d subscribers (%s): %.2f µs CPU per forwarded packet, %.0f forwarded packets/s, "+
			"SFU CPU %.1f%% of a core (user %.0f%%), loss %.4f%% (%d of %d), latency p50 %s p99 %s\n",
			pubs, subs, media[2:], perPkt, fwd/res.Window.Seconds(), 100*(cpu1-cpu0).Seconds()/res.Window.Seconds(),
			100*(usr1-usr0).Seconds()/(cpu1-cpu0).Seconds(), loss, res.Lost, res.Received+res.Lost, res.LatencyP50.Round(time.Microsecond), res.LatencyP99.Round(time.Microsecond))
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
