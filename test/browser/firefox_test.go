package browser

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"meeting.dev/meeting/test/testbin"
)

// firefoxPath is Debian's Firefox ESR (hack/test.sh installs it);
// MEETING_FIREFOX names another.
func firefoxPath() string {
	if p := os.Getenv("MEETING_FIREFOX"); p != "" {
		return p
	}
	return "/usr/bin/firefox-esr"
}

// firefoxPrefs is the profile's user.js: fake camera and microphone without
// a permission prompt, host candidates as IP addresses (no mDNS; the
// loopback pref does not make ESR 153 gather on loopback: main_test.go's
// secondIface is what it uses), media that plays without a gesture (as Chromium's
// autoplay-policy flag), and none of Firefox's own network traffic (the
// namespace has only loopback anyway).
var firefoxPrefs = [][2]string{
	{"media.navigator.streams.fake", "true"},
	{"media.navigator.permission.disabled", "true"},
	{"media.peerconnection.ice.loopback", "true"},
	{"media.peerconnection.ice.obfuscate_host_addresses", "false"},
	{"media.autoplay.default", "0"},
	{"media.autoplay.blocking_policy", "0"},

	{"network.captive-portal-service.enabled", "false"},
	{"network.connectivity-service.enabled", "false"},
	{"network.proxy.type", "0"},
	{"network.trr.mode", "5"},
	{"network.dns.disablePrefetch", "true"},
	{"network.prefetch-next", "false"},
	{"browser.safebrowsing.malware.enabled", "false"},
	{"browser.safebrowsing.phishing.enabled", "false"},
	{"browser.safebrowsing.downloads.enabled", "false"},
	{"browser.safebrowsing.downloads.remote.enabled", "false"},
	{"browser.safebrowsing.blockedURIs.enabled", "false"},
	{"browser.safebrowsing.provider.google4.updateURL", `""`},
	{"browser.safebrowsing.provider.mozilla.updateURL", `""`},
	{"app.update.enabled", "false"},
	{"app.update.auto", "false"},
	{"app.normandy.enabled", "false"},
	{"datareporting.policy.dataSubmissionEnabled", "false"},
	{"datareporting.healthreport.uploadEnabled", "false"},
	{"toolkit.telemetry.enabled", "false"},
	{"toolkit.telemetry.unified", "false"},
	{"toolkit.telemetry.archive.enabled", "false"},
	{"toolkit.telemetry.server", `""`},
	{"extensions.update.enabled", "false"},
	{"extensions.getAddons.cache.enabled", "false"},
	{"media.gmp-manager.updateEnabled", "false"},
	{"services.settings.server", `"http://127.0.0.1:9/"`},
	{"browser.shell.checkDefaultBrowser", "false"},
	{"browser.startup.homepage_override.mstone", `"ignore"`},
	{"browser.startup.page", "0"},
	{"browser.aboutwelcome.enabled", "false"},
	{"browser.newtabpage.enabled", "false"},
	{"browser.region.network.url", `""`},
	{"browser.search.update", "false"},
}

// firefox is one headless Firefox with one page, driven over WebDriver BiDi.
// Console errors and uncaught exceptions of the page fail the test.
type firefox struct {
	t       testing.TB
	cmd     *exec.Cmd
	out     *testbin.Buffer // stdout and stderr
	exited  chan struct{}
	bidi    *bidi
	context string // the page's browsing context

	mu       sync.Mutex
	errs     []string
	reported int // errs[:reported] were reported already
}

// openFirefox starts Firefox for t and stops it when t ends; it skips t when
// Firefox is not installed.
func openFirefox(t *testing.T) *firefox {
	t.Helper()
	path := firefoxPath()
	if _, err := exec.LookPath(path); err != nil {
		t.Skipf("Firefox is not installed (%v), and a test cannot install it (its network namespace has no network): "+
			"hack/test.sh installs it (apt-get install -y --no-install-recommends firefox-esr); MEETING_FIREFOX names another binary", err)
	}
	// Not t.TempDir: Firefox's last child processes may still write to the
	// profile while it is removed, which must not fail the test.
	dir, err := os.MkdirTemp("", "meeting-firefox-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	f, err := startFirefox(path, dir)
	if err != nil {
		t.Fatal(err)
	}
	f.t = t
	t.Cleanup(func() {
		if t.Failed() {
			f.screenshot("failed-" + sanitize(t.Name()) + "-firefox")
			t.Logf("firefox output (last 4 KiB):\n%s", tail(f.out.String(), 4<<10))
		}
		f.checkErrors()
		f.stop()
	})
	return f
}

var bidiListening = regexp.MustCompile(`WebDriver BiDi listening on (ws://\S+)`)

func startFirefox(path, dir string) (_ *firefox, err error) {
	profile := filepath.Join(dir, "profile")
	if err := os.MkdirAll(profile, 0o700); err != nil {
		return nil, err
	}
	var userJS strings.Builder
	for _, p := range firefoxPrefs {
		fmt.Fprintf(&userJS, "user_pref(%q, %s);\n", p[0], p[1])
	}
	if err := os.WriteFile(filepath.Join(profile, "user.js"), []byte(userJS.String()), 0o600); err != nil {
		return nil, err
	}
	f := &firefox{out: &testbin.Buffer{}, exited: make(chan struct{})}
	f.cmd = exec.Command(path, "--headless", "--no-remote", "--profile", profile, "--remote-debugging-port", "0", "about:blank")
	f.cmd.Env = append(os.Environ(), "HOME="+dir, "MOZ_CRASHREPORTER_DISABLE=1")
	f.cmd.Stdout, f.cmd.Stderr = f.out, f.out
	f.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // its child processes go with it
	f.cmd.WaitDelay = 5 * time.Second                       // a child left holding stdout does not block Wait
	if err := f.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start Firefox %s: %w", path, err)
	}
	go func() { _ = f.cmd.Wait(); close(f.exited) }()
	defer func() {
		if err != nil {
			f.stop()
			err = fmt.Errorf("%w\nfirefox output:\n%s", err, tail(f.out.String(), 4<<10))
		}
	}()

	var url string
	deadline := time.After(timeout)
	for {
		if m := bidiListening.FindStringSubmatch(f.out.String()); m != nil {
			url = m[1]
			break
		}
		select {
		case <-f.exited:
			return nil, fmt.Errorf("Firefox exited (%v) before its remote agent listened", f.cmd.ProcessState)
		case <-deadline:
			return nil, fmt.Errorf("Firefox's remote agent did not listen within %s", timeout)
		case <-time.After(50 * time.Millisecond):
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if f.bidi, err = dialBiDi(ctx, url+"/session", f.event); err != nil {
		return nil, err
	}
	if err := f.bidi.call(ctx, "session.new", map[string]any{"capabilities": map[string]any{}}, nil); err != nil {
		return nil, err
	}
	if err := f.bidi.call(ctx, "session.subscribe", map[string]any{"events": []string{"log.entryAdded"}}, nil); err != nil {
		return nil, err
	}
	// The Chromium suite's init script (window.__pcs, __wss and __states),
	// and CSP violations as console errors: BiDi does not report them.
	preload := `() => {
	  document.addEventListener("securitypolicyviolation", (e) => console.error("CSP violation:", e.violatedDirective, e.blockedURI, e.sourceFile + ":" + e.lineNumber));
	  ` + observeScript + `
	}`
	if err := f.bidi.call(ctx, "script.addPreloadScript", map[string]any{"functionDeclaration": preload}, nil); err != nil {
		return nil, err
	}
	var tree struct {
		Contexts []struct {
			Context string `json:"context"`
		} `json:"contexts"`
	}
	if err := f.bidi.call(ctx, "browsingContext.getTree", map[string]any{"maxDepth": 0}, &tree); err != nil {
		return nil, err
	}
	if len(tree.Contexts) == 0 {
		var created struct {
			Context string `json:"context"`
		}
		if err := f.bidi.call(ctx, "browsingContext.create", map[string]any{"type": "tab"}, &created); err != nil {
			return nil, err
		}
		f.context = created.Context
	} else {
		f.context = tree.Contexts[0].Context
	}
	return f, nil
}

// stop ends Firefox and every process it started.
func (f *firefox) stop() {
	if f.cmd.Process != nil {
		_ = syscall.Kill(-f.cmd.Process.Pid, syscall.SIGKILL)
		<-f.exited
		// The group's other processes die too; wait a little for them.
		for i := 0; i < 50 && syscall.Kill(-f.cmd.Process.Pid, 0) == nil; i++ {
			time.Sleep(100 * time.Millisecond)
		}
	}
	if f.bidi != nil {
		f.bidi.close()
	}
}

// event keeps the page's console errors and uncaught exceptions (log
// entries of level "error"). It runs on the BiDi reader goroutine.
func (f *firefox) event(method string, params json.RawMessage) {
	if method != "log.entryAdded" {
		return
	}
	var e struct {
		Type       string `json:"type"` // console or javascript
		Level      string `json:"level"`
		Method     string `json:"method"`
		Text       string `json:"text"`
		StackTrace struct {
			CallFrames []struct {
				URL        string `json:"url"`
				LineNumber int    `json:"lineNumber"`
			} `json:"callFrames"`
		} `json:"stackTrace"`
	}
	if json.Unmarshal(params, &e) != nil || e.Level != "error" {
		return
	}
	msg := e.Type + " " + e.Method + ": " + e.Text
	if fr := e.StackTrace.CallFrames; len(fr) > 0 {
		msg += fmt.Sprintf(" (%s:%d)", fr[0].URL, fr[0].LineNumber+1)
	}
	f.mu.Lock()
	f.errs = append(f.errs, msg)
	f.mu.Unlock()
}

// checkErrors fails the test when the page logged errors since the last
// check.
func (f *firefox) checkErrors() {
	f.t.Helper()
	f.mu.Lock()
	errs := f.errs[f.reported:]
	f.reported = len(f.errs)
	f.mu.Unlock()
	if len(errs) > 0 {
		f.t.Errorf("firefox: the page logged errors:\n  %s", strings.Join(errs, "\n  "))
	}
}

// do sends a BiDi command with the test's timeout.
func (f *firefox) do(what, method string, params, result any) {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := f.bidi.call(ctx, method, params, result); err != nil {
		var state json.RawMessage
		_ = f.tryEval(pageState, &state)
		f.t.Fatalf("firefox: %s: %v\npage: %s", what, err, state)
	}
}

func (f *firefox) tryEval(expr string, result any) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return f.bidi.evaluate(ctx, f.context, expr, false, result)
}

// ffEval evaluates a JavaScript expression in Firefox's page (promises
// awaited) and decodes its result into T.
func ffEval[T any](f *firefox, expr string) T {
	f.t.Helper()
	var v T
	if err := f.tryEval(expr, &v); err != nil {
		f.t.Fatalf("firefox: eval %s: %v", expr, err)
	}
	return v
}

func (f *firefox) navigate(url string) {
	f.t.Helper()
	f.do("navigate to "+url, "browsingContext.navigate", map[string]any{"context": f.context, "url": url, "wait": "complete"}, nil)
}

// poll evaluates expr (truthy when done) until it holds, or fails with the
// last value of describe, a JavaScript expression that says what is there.
func (f *firefox) poll(what, expr, describe string) {
	f.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var ok bool
		err := f.tryEval("!!("+expr+")", &ok)
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			if describe == "" {
				describe = pageState
			}
			var state json.RawMessage
			_ = f.tryEval(describe, &state)
			f.t.Fatalf("firefox: %s: not after %s (last error %v); state: %s", what, timeout, err, state)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// visible is true for an element that is there and rendered.
func visible(sel string) string {
	return fmt.Sprintf(`(el => !!el && el.checkVisibility())(document.querySelector(%s))`, jsonString(sel))
}

// waitFor waits until an element matching the CSS selector is visible.
func (f *firefox) waitFor(sel string) {
	f.t.Helper()
	f.poll("wait for "+sel, visible(sel), "")
}

// click clicks the visible element matching sel, once it is enabled, by
// script with a user activation (as media playback wants).
func (f *firefox) click(sel string) {
	f.t.Helper()
	f.poll("wait for "+sel+" to be enabled", visible(sel)+fmt.Sprintf(` && !document.querySelector(%s).disabled`, jsonString(sel)), "")
	// A click by script with user activation, not at coordinates: the
	// page may move between measuring and clicking (a list that loads).
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var ignored any
	if err := f.bidi.evaluate(ctx, f.context, fmt.Sprintf(`document.querySelector(%s).click()`, jsonString(sel)), true, &ignored); err != nil {
		f.t.Fatalf("firefox: click %s: %v", sel, err)
	}
}

// typeInto replaces the value of the input sel by typing text, key by key.
func (f *firefox) typeInto(sel, text string) {
	f.t.Helper()
	f.waitFor(sel)
	if !ffEval[bool](f, fmt.Sprintf(`(el => { el.focus(); el.value = ""; return document.activeElement === el; })(document.querySelector(%s))`, jsonString(sel))) {
		f.t.Fatalf("firefox: %s does not take the focus", sel)
	}
	var keys []any
	for _, r := range text {
		keys = append(keys, map[string]string{"type": "keyDown", "value": string(r)}, map[string]string{"type": "keyUp", "value": string(r)})
	}
	f.do("type into "+sel, "input.performActions", map[string]any{"context": f.context, "actions": []any{map[string]any{
		"type": "key", "id": "keyboard", "actions": keys,
	}}}, nil)
}

// screenshot writes a PNG of the viewport to the screenshot directory.
func (f *firefox) screenshot(name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var shot struct {
		Data string `json:"data"`
	}
	if err := f.bidi.call(ctx, "browsingContext.captureScreenshot", map[string]any{"context": f.context}, &shot); err != nil {
		f.t.Logf("firefox: screenshot %s: %v", name, err)
		return
	}
	png, err := base64.StdEncoding.DecodeString(shot.Data)
	if err != nil {
		f.t.Logf("firefox: screenshot %s: %v", name, err)
		return
	}
	path := filepath.Join(screenshotDir(f.t), name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		f.t.Errorf("write screenshot: %v", err)
		return
	}
	f.t.Logf("screenshot %s", path)
}

// What a person does in Firefox: the steps of flows_test.go.

func (f *firefox) register(base, user string) {
	f.t.Helper()
	f.navigate(base + "/register")
	f.typeInto("#register-username", user)
	f.typeInto("#register-password", password(user))
	f.click("#register-submit")
	f.poll("logged in as "+user+" on the list",
		fmt.Sprintf(`location.pathname === "/" && (document.querySelector("#whoami") || {}).textContent.trim() === %s && document.querySelector("#new-meeting")`, jsonString(user)), "")
}

// join opens the meeting page, the pre-join and the call, and waits until
// the call is connected.
func (f *firefox) join(base, identity string) {
	f.t.Helper()
	f.navigate(base + "/m/" + identity)
	f.click("#join")
	f.waitFor("section#prejoin")
	f.poll("the preview plays the camera", `document.querySelector("video#preview").videoWidth > 0`, "")
	f.click("#join-call")
	f.waitFor("section#call")
	f.poll("call status connected", `(document.querySelector("#call-status") || {dataset: {}}).dataset.state === "connected"`,
		`({state: (document.querySelector("#call-status") || {dataset: {}}).dataset.state, error: (document.querySelector("#call-error") || {}).textContent, states: window.__states})`)
}

func (f *firefox) seesVideo(tile string) {
	f.t.Helper()
	f.poll(tile+" plays video", fmt.Sprintf(`(document.querySelector(%s) || {}).videoWidth > 0`, jsonString(tile+" video")), tiles)
}

// mediaFlows waits until the page decodes video and receives audio, and
// then until both counts grow further (stats_test.go's statsScript over
// window.__pcs).
func (f *firefox) mediaFlows() mediaStats {
	f.t.Helper()
	wait := func(what string, ok func(mediaStats) bool) mediaStats {
		f.t.Helper()
		deadline := time.Now().Add(timeout)
		for {
			s := ffEval[mediaStats](f, statsScript)
			if ok(s) {
				return s
			}
			if time.Now().After(deadline) {
				f.t.Fatalf("firefox: %s: not after %s; stats %+v", what, timeout, s)
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
	first := wait("video frames decoded and audio received", func(s mediaStats) bool { return s.FramesDecoded > 0 && s.AudioPackets > 0 })
	return wait("video frames and audio packets still growing", func(s mediaStats) bool {
		return s.FramesDecoded > first.FramesDecoded+5 && s.AudioPackets > first.AudioPackets+10
	})
}

// selectedPairs lists Firefox's selected ICE candidate pairs (Firefox has
// no "transport" stats; its candidate-pair stats say "selected").
const selectedPairs = `(async () => {
  const out = [];
  for (const pc of window.__pcs) {
    if (pc.connectionState === "closed") continue;
    const stats = await pc.getStats();
    stats.forEach(s => {
      if (s.type !== "candidate-pair" || !s.selected) return;
      const l = stats.get(s.localCandidateId), r = stats.get(s.remoteCandidateId);
      out.push((l ? l.candidateType + " " + l.address + ":" + l.port + "/" + l.protocol : "?") + " → " + (r ? r.candidateType + " " + r.address + ":" + r.port : "?"));
    });
  }
  return out;
})()`

// chatSeen is true when chat shows a message with text from name.
func chatSeen(text, name string) string {
	return fmt.Sprintf(`[...document.querySelectorAll("#chat-messages li.chat-message")].some(m => m.querySelector(".chat-text").textContent.includes(%s) && m.querySelector(".chat-name").textContent.includes(%s))`,
		jsonString(text), jsonString(name))
}

const chatMessages = `[...document.querySelectorAll("#chat-messages li.chat-message")].map(m => m.textContent)`

// TestFirefoxCall is a call between Firefox and Chromium through the page:
// the Firefox user registers, the Chromium user schedules a meeting and
// invites them, both join; video and audio flow both ways, chat goes both
// ways with the sender's name, and Firefox's leave removes its tile. The
// Firefox page may log no error.
func TestFirefoxCall(t *testing.T) {
	t.Parallel()
	s := shared(t)
	ff := openFirefox(t)
	ff.register(s.base, "fox")
	// The server allows 10 registrations per address, then one a minute,
	// and the other tests spend them: the Chromium user is TestCall's
	// alice (TestCall is not parallel: it has ended), registered here only
	// when TestCall did not run.
	kai := newTab(t, s.browser, s.base, "alice")
	res, err := http.Post(s.base+"/user/login", "application/json", strings.NewReader(`{"username":"alice","password":`+jsonString(password("alice"))+`}`))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode == http.StatusOK {
		kai.login(s.base, "alice")
	} else {
		kai.register(s.base, "alice")
	}
	id := kai.schedule("Firefox call", 30)
	kai.invite("fox")

	ff.join(s.base, id)
	kai.prejoin()
	kai.joinCall()

	kai.waitFor(tileOf("fox"))
	ff.waitFor(tileOf("alice"))
	kai.seesVideo(tileOf("fox"))
	ff.seesVideo(tileOf("alice"))
	t.Logf("alice (Chromium) receives %+v", kai.mediaFlows())
	t.Logf("fox (Firefox) receives %+v", ff.mediaFlows())
	t.Logf("fox (Firefox) selected ICE pairs %v", ffEval[[]string](ff, selectedPairs))
	ff.checkErrors()

	// Chat both ways: Firefox sends on the chat data channel and receives.
	ff.click("#toggle-chat")
	ff.waitFor("aside#chat")
	ff.typeInto("#chat-input", "hello from firefox")
	ff.click("#chat-send")
	kai.click("#toggle-chat")
	kai.waitFor("aside#chat")
	kai.poll("alice sees fox's message", chatSeen("hello from firefox", "fox"), chatMessages)
	kai.typeInto("#chat-input", "hello fox")
	kai.click("#chat-send")
	ff.poll("fox sees alice's message", chatSeen("hello fox", "alice"), chatMessages)

	ff.click("#leave")
	ff.waitFor("#join")
	kai.waitGone(tileOf("fox"))
	kai.click("#leave")
	kai.waitFor("#join")
	ff.checkErrors()
}
