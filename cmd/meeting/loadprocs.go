package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"sync"

	"meeting.dev/meeting/media/client"
)

// Spreading subscribers over processes (--procs N): the parent runs the
// publishers; N children (this executable, `loadtest --child`) run the
// subscribers, about equal shares. Each child prints {"event":"ready"} once
// its subscribers receive every track and waits for a line on its stdin;
// the parent sends it to all at once, so that the windows line up (within
// a pipe's latency), then merges the children's results with its own.

// loadChild is one child process.
type loadChild struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	ready  chan struct{}
	result chan client.LoadResult
	done   chan error // the scanner's end
}

// loadChildArgs are the child's flags: the parent's media, shape and
// target, its share of subscribers. The token key and the password go
// through the environment (flags show in ps).
func (f *loadtestFlags) childArgs(subs, offset int) []string {
	a := []string{"loadtest", "--child", "--json", "--log-level", f.log.level.String(), "--log-format", "text",
		"--room", f.cfg.Room, "--url", f.cfg.URL,
		"--publishers", "0", "--external-publishers", strconv.Itoa(f.cfg.Publishers),
		"--subscribers", strconv.Itoa(subs), "--subscriber-offset", strconv.Itoa(offset),
		"--duration", f.cfg.Duration.String(), "--settle", f.cfg.Settle.String(),
		"--setup-timeout", f.cfg.JoinTimeout.String(), "--concurrency", strconv.Itoa(f.cfg.Concurrency)}
	if f.cfg.Audio {
		a = append(a, "--audio")
	}
	if f.cfg.Video {
		a = append(a, "--video")
	}
	if f.api != "" {
		a = append(a, "--api", f.api, "--user", f.user, "--meeting", f.meeting)
	}
	return a
}

// startChildren starts procs children sharing cfg.Subscribers.
func (f *loadtestFlags) startChildren(ctx context.Context, log *slog.Logger, stderr io.Writer) ([]*loadChild, error) {
	exe := os.Getenv("MEETING_LOADTEST_EXE") // tests: the meeting binary, not the test binary
	if exe == "" {
		var err error
		if exe, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("--procs: %w", err)
		}
	}
	var cs []*loadChild
	offset := 0
	for i := range f.procs {
		subs := f.cfg.Subscribers / f.procs
		if i < f.cfg.Subscribers%f.procs {
			subs++
		}
		cmd := exec.CommandContext(ctx, exe, f.childArgs(subs, offset)...)
		offset += subs
		cmd.Env = append(os.Environ(), "MEETING_TOKEN_KEY="+f.tokenKey, "MEETING_PASSWORD="+f.password)
		cmd.Stderr = stderr
		stdin, err := cmd.StdinPipe()
		if err != nil {
			return cs, fmt.Errorf("--procs: %w", err)
		}
		out, err := cmd.StdoutPipe()
		if err != nil {
			return cs, fmt.Errorf("--procs: %w", err)
		}
		if err := cmd.Start(); err != nil {
			return cs, fmt.Errorf("--procs: start child: %w", err)
		}
		c := &loadChild{cmd: cmd, stdin: stdin, ready: make(chan struct{}), result: make(chan client.LoadResult, 1), done: make(chan error, 1)}
		cs = append(cs, c)
		go c.read(out, log.With("child", i, "pid", cmd.Process.Pid))
	}
	return cs, nil
}

// read follows a child's JSON lines.
func (c *loadChild) read(out io.Reader, log *slog.Logger) {
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	readyOnce := sync.Once{}
	for sc.Scan() {
		var ev struct {
			Event string `json:"event"`
			client.LoadResult
		}
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			log.Warn("child printed something else", "line", sc.Text())
			continue
		}
		switch ev.Event {
		case "ready":
			readyOnce.Do(func() { close(c.ready) })
		case "result":
			c.result <- ev.LoadResult
		}
	}
	c.done <- sc.Err()
}

// waitReady waits until every child is ready, then lets them all go.
func waitReady(ctx context.Context, cs []*loadChild) error {
	for i, c := range cs {
		select {
		case <-c.ready:
		case err := <-c.done:
			return fmt.Errorf("--procs: child %d ended before it was ready (%v): %w", i, err, c.cmd.Wait())
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	for i, c := range cs {
		if _, err := io.WriteString(c.stdin, "go\n"); err != nil {
			return fmt.Errorf("--procs: child %d: %w", i, err)
		}
	}
	return nil
}

// collect waits for every child's result.
func collect(ctx context.Context, cs []*loadChild) ([]client.LoadResult, error) {
	var rs []client.LoadResult
	var errs []error
	for i, c := range cs {
		select {
		case r := <-c.result:
			rs = append(rs, r)
		case <-c.done:
			// read sends the result before done: when both are there,
			// select may pick either.
			select {
			case r := <-c.result:
				rs = append(rs, r)
			default:
				errs = append(errs, fmt.Errorf("child %d gave no result", i))
			}
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if err := c.cmd.Wait(); err != nil {
			errs = append(errs, fmt.Errorf("child %d: %w", i, err))
		}
	}
	return rs, errors.Join(errs...)
}

// stopChildren ends children that are still running (after an error).
func stopChildren(cs []*loadChild) {
	for _, c := range cs {
		_ = c.stdin.Close()
		if c.cmd.ProcessState == nil {
			_ = c.cmd.Process.Kill()
			_ = c.cmd.Wait()
		}
	}
}

// waitGo is a child's BeforeWindow: say ready, wait for the parent's line.
func waitGo(stdin io.Reader, emit func(any)) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		emit(map[string]string{"event": "ready"})
		line := make(chan error, 1)
		go func() {
			_, err := bufio.NewReader(stdin).ReadString('\n')
			line <- err
		}()
		select {
		case err := <-line:
			if err != nil {
				return fmt.Errorf("waiting for the parent: %w", err)
			}
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
