// Package e2e runs the built meeting binary as separate processes and talks
// to it the way users do.
package e2e

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"meeting.dev/meeting/test/testbin"
)

// process is a program a test runs and kills at its end: the meeting
// binary or one of coturn's tools.
type process struct {
	cmd            *exec.Cmd
	stdout, stderr *testbin.Buffer
	out            *testbin.Buffer // stdout and stderr together
	done           chan struct{}
	err            error
}

// start runs the meeting binary with args and extra environment (see startCmd).
func start(t testing.TB, env []string, args ...string) *process {
	t.Helper()
	return startCmd(t, env, testbin.Meeting(t), args...)
}

// startCmd runs name with args and extra environment on top of a clean one:
// PATH, HOME and random media ports only, so the developer's MEETING_*
// variables don't leak in.
func startCmd(t testing.TB, env []string, name string, args ...string) *process {
	t.Helper()
	cmd := exec.Command(name, args...)
	// Media ports are random unless a test names them: tests run side by side.
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "MEETING_UDP_PORT=0", "MEETING_TURN_PORT=0"}, env...)
	p := &process{cmd: cmd, stdout: &testbin.Buffer{}, stderr: &testbin.Buffer{}, out: &testbin.Buffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = io.MultiWriter(p.stdout, p.out), io.MultiWriter(p.stderr, p.out)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", filepath.Base(name), err)
	}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("%s %v output:\n%s", filepath.Base(name), args, p.out.String())
		}
	})
	return p
}

// logLine waits for a JSON log line with this msg and returns its fields.
func (p *process) logLine(t testing.TB, msg string) map[string]any {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		if rec, ok := testbin.LogLine(p.stderr.String(), msg); ok {
			return rec
		}
		select {
		case <-p.done:
			t.Fatalf("meeting exited (%v) before logging %q:\n%s", p.err, msg, p.stderr.String())
		case <-deadline:
			t.Fatalf("no %q log line after 30s:\n%s", msg, p.stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// stop sends SIGTERM and waits for a clean exit.
func (p *process) stop(t testing.TB) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
		if p.err != nil {
			t.Fatalf("meeting exited with %v after SIGTERM:\n%s", p.err, p.stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("meeting did not exit within 30s of SIGTERM")
	}
}
