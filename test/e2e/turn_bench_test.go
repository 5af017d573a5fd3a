package e2e

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

// turnBenchArgs drive both servers the same way: 200 clients relaying to
// each other in pairs (-y), 100-byte messages, one every 5 ms per client
// (40,000 a second asked for; uclient's own timer loop delivers about
// 10,000 a second on a 2-core machine), 400 messages per client.
var turnBenchArgs = []string{"-y", "-m", "200", "-z", "5", "-n", "400", "-l", "100"}

// turnFigures accumulates one server's runs.
type turnFigures struct {
	ticks, sent, received, lost, seconds int64
	// probeMessages are the latency probe's pings and echoes during the
	// ticks (BenchmarkTURNPressure): each crosses the server as a uclient
	// message does, so CPU per message counts them.
	probeMessages int64
}

func (f turnFigures) cpuMicrosPerMessage() float64 {
	return float64(f.ticks) * 1e6 / 100 / float64(f.sent+f.probeMessages) // USER_HZ is 100
}

func (f turnFigures) lossPercent() float64 {
	return 100 * float64(f.lost) / float64(f.sent)
}

// BenchmarkTURNRelay measures the CPU that `meeting turn` and coturn's
// turnserver spend per relayed message when turnutils_uclient drives each
// with the same settings, and the loss uclient sees. CPU is the server
// process's user+system time from /proc/<pid>/stat over the uclient run
// (allocation set-up included), divided by the messages uclient sent; each
// message crosses the server twice (client → relay → peer relay → client).
// Each b.N iteration runs two rounds, each round both servers, coturn
// first; hack/bench.sh runs one iteration (-benchtime 1x).
func BenchmarkTURNRelay(b *testing.B) {
	needTool(b, "turnutils_uclient")
	turnserver := needTool(b, "turnserver")
	const secret = "bench-turn-secret"
	var ours, coturn turnFigures
	rounds := 2 * b.N
	for i := 0; i < rounds; i++ {
		coturn.add(benchCoturn(b, turnserver, secret))
		ours.add(benchMeeting(b, secret))
	}
	b.ReportMetric(ours.cpuMicrosPerMessage(), "meeting-cpu-µs/msg")
	b.ReportMetric(coturn.cpuMicrosPerMessage(), "coturn-cpu-µs/msg")
	b.ReportMetric(ours.lossPercent(), "meeting-loss-%")
	b.ReportMetric(coturn.lossPercent(), "coturn-loss-%")
	b.ReportMetric(ours.cpuMicrosPerMessage()/coturn.cpuMicrosPerMessage(), "cpu-ratio")
	fmt.Printf("\nTURN relay, turnutils_uclient %v, %d round(s)\n", turnBenchArgs, rounds)
	fmt.Printf("%-14s %10s %10s %10s %8s %14s\n", "server", "messages", "msg/s", "lost", "loss %", "CPU µs/msg")
	for _, r := range []struct {
		name string
		f    turnFigures
	}{{"meeting turn", ours}, {"coturn", coturn}} {
		fmt.Printf("%-14s %10d %10.0f %10d %8.3f %14.2f\n", r.name, r.f.sent,
			float64(r.f.sent)/float64(max(r.f.seconds, 1)), r.f.lost, r.f.lossPercent(), r.f.cpuMicrosPerMessage())
	}
	fmt.Printf("CPU ratio meeting turn / coturn: %.2f (target ≤ 1.00)\n\n", ours.cpuMicrosPerMessage()/coturn.cpuMicrosPerMessage())
}

func (f *turnFigures) add(g turnFigures) {
	f.ticks += g.ticks
	f.sent += g.sent
	f.received += g.received
	f.lost += g.lost
	f.seconds += g.seconds
	f.probeMessages += g.probeMessages
}

// turnMeasure runs uclient against a server process and returns its figures.
func turnMeasure(b *testing.B, pid int, secret, port string) turnFigures {
	time.Sleep(500 * time.Millisecond) // let the server settle after start-up
	before := cpuTicks(b, pid)
	args := append([]string{"-W", secret, "-p", port}, turnBenchArgs...)
	r := runUclient(b, 5*time.Minute, append(args, "127.0.0.1")...)
	ticks := cpuTicks(b, pid) - before
	if r.sent == 0 {
		b.Fatalf("uclient sent nothing:\n%s", r.output)
	}
	return turnFigures{ticks: ticks, sent: r.sent, received: r.received, lost: r.lost, seconds: r.transmitSeconds}
}

func benchMeeting(b *testing.B, secret string) turnFigures {
	d, port, _ := meetingTURN(b, secret, "--user-quota", "0")
	defer d.stop(b)
	return turnMeasure(b, d.cmd.Process.Pid, secret, port)
}

func benchCoturn(b *testing.B, turnserver, secret string) turnFigures {
	pid, port, stop := startCoturn(b, turnserver, secret)
	defer stop()
	return turnMeasure(b, pid, secret, port)
}

// startCoturn starts coturn's turnserver on a free loopback port with the
// shared secret, as the benchmarks and TestTURNProbe use it; stop kills it
// (call it before measuring anything else).
func startCoturn(b testing.TB, turnserver, secret string) (pid int, port string, stop func()) {
	port = turnFreeUDPPort(b)
	d := startCmd(b, nil, turnserver,
		"-n", // no configuration file
		"--use-auth-secret", "--static-auth-secret="+secret, "--realm=meeting",
		"--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1", "--listening-port="+port,
		"--allow-loopback-peers", "--no-cli", "--no-tls", "--no-dtls",
		"--log-file="+filepath.Join(b.TempDir(), "turnserver.log"), "--no-stdout-log")
	stop = func() { _ = d.cmd.Process.Kill() }
	waitUDPServer(b, port)
	return d.cmd.Process.Pid, port, stop
}
