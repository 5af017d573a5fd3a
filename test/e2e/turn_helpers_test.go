package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"meeting.dev/meeting/test/testbin"
)

// needTool fails when a tool hack/test.sh installs is missing.
func needTool(tb testing.TB, name string) string {
	tb.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		tb.Fatalf("%s not found: hack/test.sh installs it (Debian package coturn)", name)
	}
	return p
}

// cpuTicks is the user plus system CPU time a process has used, in clock
// ticks (USER_HZ, 100 per second on Linux), from /proc/<pid>/stat.
func cpuTicks(tb testing.TB, pid int) int64 {
	tb.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		tb.Fatal(err)
	}
	// The command name (field 2) may hold spaces; fields after it are plain.
	rest := string(b[bytes.LastIndexByte(b, ')')+2:])
	f := strings.Fields(rest) // f[0] is field 3 (state)
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		tb.Fatalf("parse /proc/%d/stat: %q", pid, b)
	}
	return utime + stime
}

// uclientResult is what turnutils_uclient reports at its end.
type uclientResult struct {
	sent, received, lost int64
	lossPercent          float64
	transmitSeconds      int64
	output               string
}

var (
	uclientTotals   = regexp.MustCompile(`tot_send_msgs=(\d+), tot_recv_msgs=(\d+)\s*$`)
	uclientLost     = regexp.MustCompile(`Total lost packets (\d+) \(([0-9.]+)%\)`)
	uclientTransmit = regexp.MustCompile(`Total transmit time is (\d+)`)
)

// runUclient runs coturn's turnutils_uclient to completion and parses its totals.
func runUclient(tb testing.TB, timeout time.Duration, args ...string) uclientResult {
	tb.Helper()
	return runUclientConnected(tb, timeout, nil, args...)
}

// uclientConnected is uclient's line when every client has its allocation
// and it starts sending.
const uclientConnected = "Total connect time is"

// runUclientConnected is runUclient calling connected (when not nil) as
// soon as uclient has set up all its clients and starts sending (its
// output is polled every 5 ms).
func runUclientConnected(tb testing.TB, timeout time.Duration, connected func(), args ...string) uclientResult {
	tb.Helper()
	cmd := exec.Command(needTool(tb, "turnutils_uclient"), args...)
	var out testbin.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var poll <-chan time.Time // nil: no polling
	if connected != nil {
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		poll = t.C
	}
	expired := time.After(timeout)
	for running := true; running; {
		select {
		case <-poll:
			if strings.Contains(out.String(), uclientConnected) {
				connected()
				poll = nil
			}
		case err := <-done:
			if err != nil {
				tb.Fatalf("turnutils_uclient %v: %v\n%s", args, err, out.String())
			}
			running = false
		case <-expired:
			_ = cmd.Process.Kill()
			<-done
			tb.Fatalf("turnutils_uclient %v did not finish in %v:\n%s", args, timeout, out.String())
		}
	}
	r := uclientResult{output: out.String()}
	var totals, lost, transmit []string
	for _, line := range strings.Split(r.output, "\n") {
		if m := uclientTotals.FindStringSubmatch(line); m != nil {
			totals = m
		}
		if m := uclientLost.FindStringSubmatch(line); m != nil {
			lost = m
		}
		if m := uclientTransmit.FindStringSubmatch(line); m != nil {
			transmit = m
		}
	}
	if totals == nil || lost == nil || transmit == nil {
		tb.Fatalf("turnutils_uclient printed no totals:\n%s", r.output)
	}
	r.sent, _ = strconv.ParseInt(totals[1], 10, 64)
	r.received, _ = strconv.ParseInt(totals[2], 10, 64)
	r.lost, _ = strconv.ParseInt(lost[1], 10, 64)
	r.lossPercent, _ = strconv.ParseFloat(lost[2], 64)
	r.transmitSeconds, _ = strconv.ParseInt(transmit[1], 10, 64)
	return r
}

// meetingTURN runs `meeting turn` on loopback with random ports, relaying to
// loopback peers, and returns it with its TURN port and HTTP address.
func meetingTURN(tb testing.TB, secret string, extra ...string) (d *process, port, httpAddr string) {
	tb.Helper()
	args := append([]string{"turn",
		"--listen", "127.0.0.1:0", "--http-addr", "127.0.0.1:0",
		"--relay-ip", "127.0.0.1", "--relay-bind-ip", "127.0.0.1",
		"--allow-peer", "127.0.0.0/8", "--log-format", "json"}, extra...)
	d = start(tb, []string{"MEETING_TURN_SECRET=" + secret}, args...)
	serving := d.logLine(tb, "turn serving")
	udp, _ := serving["udp"].(string)
	_, port, ok := strings.Cut(udp, "127.0.0.1:")
	if !ok {
		tb.Fatalf("turn serving on %q", udp)
	}
	listening, _ := d.logLine(tb, "listening")["addr"].(string)
	return d, port, strings.TrimPrefix(listening, "http://")
}
