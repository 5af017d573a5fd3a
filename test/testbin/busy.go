package testbin

import (
	"os/exec"
	"runtime"
	"strconv"
	"testing"
)

// BusyLoops starts a busy process pinned to each core (taskset), the noisy
// neighbour of the pressure benchmarks, and returns the function that stops
// them (also run at the end of tb).
func BusyLoops(tb testing.TB) func() {
	tb.Helper()
	taskset, err := exec.LookPath("taskset")
	if err != nil {
		tb.Fatalf("busy loops need taskset (util-linux): %v", err)
	}
	var cmds []*exec.Cmd
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
	tb.Cleanup(stop)
	for cpu := range runtime.NumCPU() {
		cmd := exec.Command(taskset, "-c", strconv.Itoa(cpu), "sh", "-c", "while :; do :; done")
		if err := cmd.Start(); err != nil {
			tb.Fatalf("busy loop on CPU %d: %v", cpu, err)
		}
		cmds = append(cmds, cmd)
	}
	return stop
}
