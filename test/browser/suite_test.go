package browser

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"meeting.dev/meeting/test/testbin"
)

// chromiumPath is Debian's Chromium binary (/usr/bin/chromium is a wrapper
// script around it); MEETING_CHROMIUM names another.
func chromiumPath() string {
	if p := os.Getenv("MEETING_CHROMIUM"); p != "" {
		return p
	}
	return "/usr/lib/chromium/chromium"
}

// suite is what the tests of one run share: one meeting server, one
// Chromium with fake devices. Each test opens its own browser contexts.
// The server admits 10 registrations from one address, then one a minute,
// and every tab comes from 127.0.0.1: the suite registers at most 10 users
// (alice, bob, carol, dan, erin, fay, fox, gil, hal and dan's refused
// second try). A new test logs in as one of them or as root.

// adminPassword is the password of the administrator "root" that
// standalone makes at its first start.
const adminPassword = "browser-admin-pw"

type suite struct {
	base    string // http://127.0.0.1:port of the meeting server
	server  *process
	browser *chromium
}

var (
	suiteOnce sync.Once
	theSuite  *suite
	suiteErr  error
	// cleanups run after every test, in reverse order (stopSuite).
	cleanupsMu sync.Mutex
	cleanups   []func()
)

func atExit(f func()) {
	cleanupsMu.Lock()
	defer cleanupsMu.Unlock()
	cleanups = append(cleanups, f)
}

func stopSuite() {
	cleanupsMu.Lock()
	defer cleanupsMu.Unlock()
	for i := len(cleanups) - 1; i >= 0; i-- {
		cleanups[i]()
	}
	cleanups = nil
}

// shared starts the meeting server and the browser the first time a test
// asks, and returns them; it skips t outside a namespace.
func shared(t testing.TB) *suite {
	t.Helper()
	needNamespace(t)
	suiteOnce.Do(func() { theSuite, suiteErr = startSuite(testbin.Meeting(t)) })
	if suiteErr != nil {
		t.Fatal(suiteErr)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("meeting output (last 8 KiB):\n%s", tail(theSuite.server.out.String(), 8<<10))
		}
	})
	return theSuite
}

func startSuite(bin string) (*suite, error) {
	dir, err := os.MkdirTemp("", "meeting-browser-")
	if err != nil {
		return nil, err
	}
	atExit(func() { _ = os.RemoveAll(dir) })
	srv, err := startProcess(bin, []string{
		"MEETING_HTTP_ADDR=127.0.0.1:0", "MEETING_UDP_PORT=0", "MEETING_TURN_PORT=0",
		"MEETING_END_GRACE=8s", // TestMeetingEnds waits for a room to close
		"MEETING_DATA_DIR=" + filepath.Join(dir, "data"), "MEETING_LOG_FORMAT=json",
		"MEETING_ADMIN_PASSWORD=" + adminPassword, "HOME=" + dir,
	})
	if err != nil {
		return nil, err
	}
	atExit(srv.kill)
	rec, err := srv.logLine("listening", 60*time.Second)
	if err != nil {
		return nil, err
	}
	base, _ := rec["addr"].(string)
	if !strings.HasPrefix(base, "http://127.0.0.1:") {
		return nil, fmt.Errorf("meeting listens on %q, want http://127.0.0.1:port", base)
	}
	b, err := startBrowser(filepath.Join(dir, "chromium"), true)
	if err != nil {
		return nil, err
	}
	atExit(b.stop)
	return &suite{base: base, server: srv, browser: b}, nil
}

// process is the meeting server, run for the whole test binary.
type process struct {
	cmd  *exec.Cmd
	out  *testbin.Buffer // stdout and stderr
	errs *testbin.Buffer // stderr: the JSON log
	done chan struct{}
	err  error
}

func startProcess(bin string, env []string) (*process, error) {
	cmd := exec.Command(bin)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
	p := &process{cmd: cmd, out: &testbin.Buffer{}, errs: &testbin.Buffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, io.MultiWriter(p.out, p.errs)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start meeting: %w", err)
	}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	return p, nil
}

func (p *process) kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// logLine waits for a JSON log line with this msg and returns its fields.
func (p *process) logLine(msg string, timeout time.Duration) (map[string]any, error) {
	deadline := time.After(timeout)
	for {
		if rec, ok := testbin.LogLine(p.errs.String(), msg); ok {
			return rec, nil
		}
		select {
		case <-p.done:
			return nil, fmt.Errorf("meeting exited (%v) before logging %q:\n%s", p.err, msg, p.out.String())
		case <-deadline:
			return nil, fmt.Errorf("no %q log line after %s:\n%s", msg, timeout, p.out.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// chromium is one Chromium process.
type chromium struct {
	ctx    context.Context // a chromedp context holding the browser
	cancel func()
	out    *testbin.Buffer
}

// chromiumFlags are the flags that make Chromium 156 work here: headless
// in a loopback-only namespace, WebRTC on loopback with host candidates as
// IP addresses (no mDNS), no network request of its own, fake camera and
// microphone without a permission prompt. use-fake-ui-for-media-stream
// also answers getDisplayMedia with a fake screen ("screen:-3:0", moving
// frames) without a picker: no auto-select-desktop-capture-source or
// tab-capture flag is needed. It overrides Browser.setPermission too, so a
// test that needs getUserMedia to fail starts a browser without fake
// devices: there, with no real device, getUserMedia rejects with
// NotFoundError.
func chromiumFlags(fakeDevices bool) []chromedp.ExecAllocatorOption {
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath()),
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.WindowSize(1280, 800),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-breakpad", true),
		chromedp.Flag("disable-background-timer-throttling", true),
		chromedp.Flag("disable-backgrounding-occluded-windows", true),
		chromedp.Flag("disable-renderer-backgrounding", true),
		chromedp.Flag("password-store", "basic"),
		chromedp.Flag("use-mock-keychain", true),
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost"),
		chromedp.Flag("allow-loopback-in-peer-connection", true),
		chromedp.Flag("disable-features", "WebRtcHideLocalIpsWithMdns,Translate,MediaRouter,OptimizationHints"),
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"),
		chromedp.Flag("use-fake-ui-for-media-stream", true),
	}
	if fakeDevices {
		opts = append(opts, chromedp.Flag("use-fake-device-for-media-stream", true))
	}
	return opts
}

func startBrowser(profile string, fakeDevices bool) (*chromium, error) {
	out := &testbin.Buffer{}
	opts := append(chromiumFlags(fakeDevices), chromedp.UserDataDir(profile), chromedp.CombinedOutput(out))
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		cancel()
		cancelAlloc()
		if errors.Is(err, exec.ErrNotFound) || os.IsNotExist(errors.Unwrap(err)) {
			return nil, fmt.Errorf("start Chromium %s: %w (hack/test.sh installs Debian's chromium)", chromiumPath(), err)
		}
		return nil, fmt.Errorf("start Chromium %s: %w\n%s", chromiumPath(), err, out.String())
	}
	return &chromium{ctx: ctx, cancel: func() { cancel(); cancelAlloc() }, out: out}, nil
}

func (b *chromium) stop() { b.cancel() }

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}
