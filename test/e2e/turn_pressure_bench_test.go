package e2e

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"testing"
	"time"
)

// BenchmarkTURNPressure drives `meeting turn` and coturn's turnserver with
// turnutils_uclient at 10,000 and 20,000 messages a second offered (clients
// relaying to each other in pairs, 100 messages a second each, 100-byte
// messages, 10 s), quiet and with a busy process pinned to each core
// (taskset), and prints for each: messages/s uclient achieved, loss, round
// trip and CPU per message. Targets (issue 12): meeting turn's loss at most
// coturn's and its round trip at most 1.5× coturn's, in each condition.
func BenchmarkTURNPressure(b *testing.B) {
	needTool(b, "turnutils_uclient")
	turnserver := needTool(b, "turnserver")
	const secret = "bench-turn-secret"
	type row struct {
		rate         int
		busy         bool
		ours, coturn turnFigures
		oursRTT      float64
		coturnRTT    float64
	}
	var rows []row
	for range b.N {
		for _, rate := range []int{10000, 20000} {
			for _, busy := range []bool{false, true} {
				args := []string{"-y", "-m", strconv.Itoa(rate / 100), "-z", "10", "-n", "1000", "-l", "100"}
				r := row{rate: rate, busy: busy}
				r.coturn, r.coturnRTT = benchCoturnWith(b, turnserver, secret, args, busy)
				r.ours, r.oursRTT = benchMeetingWith(b, secret, args, busy)
				rows = append(rows, r)
			}
		}
	}
	fmt.Printf("\nTURN under pressure: turnutils_uclient -y -m <rate/100> -z 10 -n 1000 -l 100; busy = a busy loop pinned to each of %d cores\n", runtime.NumCPU())
	fmt.Printf("%-8s %-6s %-13s %10s %10s %8s %10s %12s\n", "offered", "cond", "server", "messages", "msg/s", "loss %", "RTT ms", "CPU µs/msg")
	for _, r := range rows {
		cond := "quiet"
		if r.busy {
			cond = "busy"
		}
		for _, s := range []struct {
			name string
			f    turnFigures
			rtt  float64
		}{{"meeting turn", r.ours, r.oursRTT}, {"coturn", r.coturn, r.coturnRTT}} {
			fmt.Printf("%-8d %-6s %-13s %10d %10.0f %8.3f %10.2f %12.2f\n", r.rate, cond, s.name, s.f.sent,
				float64(s.f.sent)/float64(max(s.f.seconds, 1)), s.f.lossPercent(), s.rtt, s.f.cpuMicrosPerMessage())
		}
		lossOK := r.ours.lossPercent() <= r.coturn.lossPercent()
		rttOK := r.coturnRTT == 0 || r.oursRTT <= 1.5*r.coturnRTT
		fmt.Printf("targets %d %s: loss ≤ coturn's %v, round trip ≤ 1.5× coturn's %v (ratio %.2f)\n", r.rate, cond, lossOK, rttOK, r.oursRTT/max(r.coturnRTT, 1e-9))
	}
	fmt.Println()
}

var uclientRTT = regexp.MustCompile(`Average round trip delay ([0-9.]+) ms`)

// measureWith runs uclient with args against a server process, with busy
// loops beside it when busy, and returns its figures and average round trip.
func measureWith(b *testing.B, pid int, secret, port string, args []string, busy bool) (turnFigures, float64) {
	time.Sleep(500 * time.Millisecond) // let the server settle after start-up
	if busy {
		stop := busyLoops(b)
		defer stop()
		time.Sleep(200 * time.Millisecond)
	}
	before := cpuTicks(b, pid)
	r := runUclient(b, 5*time.Minute, append(append([]string{"-W", secret, "-p", port}, args...), "127.0.0.1")...)
	ticks := cpuTicks(b, pid) - before
	if r.sent == 0 {
		b.Fatalf("uclient sent nothing:\n%s", r.output)
	}
	rtt := 0.0
	if m := uclientRTT.FindStringSubmatch(r.output); m != nil {
		rtt, _ = strconv.ParseFloat(m[1], 64)
	}
	return turnFigures{ticks: ticks, sent: r.sent, received: r.received, lost: r.lost, seconds: r.transmitSeconds}, rtt
}

func benchMeetingWith(b *testing.B, secret string, args []string, busy bool) (turnFigures, float64) {
	d, port, _ := meetingTURN(b, secret, "--user-quota", "0")
	defer d.stop(b)
	return measureWith(b, d.cmd.Process.Pid, secret, port, args, busy)
}

func benchCoturnWith(b *testing.B, turnserver, secret string, args []string, busy bool) (turnFigures, float64) {
	port := turnFreeUDPPort(b)
	d := startCmd(b, nil, turnserver,
		"-n", // no configuration file
		"--use-auth-secret", "--static-auth-secret="+secret, "--realm=meeting",
		"--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1", "--listening-port="+port,
		"--allow-loopback-peers", "--no-cli", "--no-tls", "--no-dtls",
		"--log-file="+filepath.Join(b.TempDir(), "turnserver.log"), "--no-stdout-log")
	defer func() { _ = d.cmd.Process.Kill() }()
	waitUDPServer(b, port)
	return measureWith(b, d.cmd.Process.Pid, secret, port, args, busy)
}

// busyLoops starts a busy process pinned to each core and returns the
// function that stops them (also run at the end of the benchmark).
func busyLoops(b *testing.B) func() {
	taskset, err := exec.LookPath("taskset")
	if err != nil {
		b.Fatalf("busy loops need taskset (util-linux): %v", err)
	}
	var cmds []*exec.Cmd
	for cpu := range runtime.NumCPU() {
		cmd := exec.Command(taskset, "-c", strconv.Itoa(cpu), "sh", "-c", "while :; do :; done")
		if err := cmd.Start(); err != nil {
			b.Fatalf("busy loop on CPU %d: %v", cpu, err)
		}
		cmds = append(cmds, cmd)
	}
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		for _, c := range cmds {
			_ = c.Process.Kill()
			_ = c.Wait()
		}
	}
	b.Cleanup(stop)
	return stop
}
