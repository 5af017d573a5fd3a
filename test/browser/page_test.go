package browser

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// observeScript runs in every document before the page's own scripts: it
// records every RTCPeerConnection and WebSocket the page makes, in
// window.__pcs and window.__wss (the contract's section 3 lets tests wrap
// the global constructors).
//
// It also records each change of #call-status's data-state in
// window.__states, so that a test sees a "reconnecting" that lasts less
// than a poll.
const observeScript = `(() => {
  window.__pcs = [];
  window.__wss = [];
  window.__states = [];
  new MutationObserver(() => {
    const el = document.getElementById("call-status");
    const state = el ? el.dataset.state || "" : "";
    if (state && state !== window.__states[window.__states.length - 1]) window.__states.push(state);
  }).observe(document, {subtree: true, childList: true, attributes: true, attributeFilter: ["data-state"]});
  const PC = window.RTCPeerConnection;
  if (PC) window.RTCPeerConnection = class extends PC {
    constructor(...args) { super(...args); window.__pcs.push(this); }
  };
  const WS = window.WebSocket;
  window.WebSocket = class extends WS {
    constructor(...args) { super(...args); window.__wss.push(this); }
  };
})();`

// timeout bounds every wait of a test; polls never assert durations.
const timeout = 45 * time.Second

// tab is one page in its own browser context (its own cookies and
// storage: one user). Console errors and uncaught exceptions fail the test
// unless it allows them.
type tab struct {
	t testing.TB
	*tabState
}

type tabState struct {
	name   string
	ctx    context.Context
	origin string // requests elsewhere are errors (no third-party requests)

	mu       sync.Mutex
	errs     []string
	reported int // errs[:reported] were reported already
	allowed  []string
}

// in returns the tab bound to t (a subtest), sharing its state.
func (p *tab) in(t testing.TB) *tab { return &tab{t: t, tabState: p.tabState} }

// newTab opens a tab in a new browser context of b, for pages of origin.
func newTab(t testing.TB, b *chromium, origin, name string) *tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx, chromedp.WithNewBrowserContext())
	p := &tab{t: t, tabState: &tabState{name: name, ctx: ctx, origin: origin}}
	if err := chromedp.Listen(ctx, p.record); err != nil {
		cancel()
		t.Fatalf("%s: open a tab: %v", name, err)
	}
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: observeScript}); err != nil {
		cancel()
		t.Fatalf("%s: add the init script: %v", name, err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			p.screenshot("failed-" + sanitize(t.Name()) + "-" + name)
		}
		cancel()
		p.checkErrors()
	})
	return p
}

// record keeps console errors, uncaught exceptions and error log entries
// (failed requests, CSP violations). It runs on chromedp's reader goroutine.
func (p *tab) record(ev any) {
	var msg string
	switch ev := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		if ev.Type != runtime.ConsoleAPICalledTypeError && ev.Type != runtime.ConsoleAPICalledTypeAssert {
			return
		}
		var parts []string
		for _, a := range ev.Args {
			if len(a.Value) > 0 {
				parts = append(parts, string(a.Value))
			} else {
				parts = append(parts, a.Description)
			}
		}
		msg = "console." + string(ev.Type) + ": " + strings.Join(parts, " ")
	case *runtime.EventExceptionThrown:
		d := ev.ExceptionDetails
		msg = "uncaught: " + d.Text
		if d.Exception != nil {
			msg += " " + d.Exception.Description
		}
		msg += fmt.Sprintf(" (%s:%d)", d.URL, d.LineNumber+1)
	case *network.EventRequestWillBeSent:
		u := ev.Request.URL
		if strings.HasPrefix(u, "data:") || strings.HasPrefix(u, "blob:") || strings.HasPrefix(u, p.origin+"/") ||
			strings.HasPrefix(u, "ws"+strings.TrimPrefix(p.origin, "http")+"/") {
			return
		}
		msg = "request to another origin: " + u
	case *cdplog.EventEntryAdded:
		if ev.Entry.Level != cdplog.EntryLevelError {
			return
		}
		msg = fmt.Sprintf("log %s: %s %s", ev.Entry.Source, ev.Entry.Text, ev.Entry.URL)
	default:
		return
	}
	p.mu.Lock()
	p.errs = append(p.errs, msg)
	p.mu.Unlock()
}

// allowErrors lets errors containing one of substrs pass (a test that
// provokes a 401 expects the failed request in the log).
func (p *tab) allowErrors(substrs ...string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.allowed = append(p.allowed, substrs...)
}

// newErrors returns the errors logged since the last call that were not
// allowed.
func (p *tab) newErrors() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	errs := p.errs[p.reported:]
	p.reported = len(p.errs)
next:
	for _, e := range errs {
		for _, a := range p.allowed {
			if strings.Contains(e, a) {
				continue next
			}
		}
		out = append(out, e)
	}
	return out
}

// checkErrors fails the test when the page logged errors since the last
// check.
func (p *tab) checkErrors() {
	p.t.Helper()
	if errs := p.newErrors(); len(errs) > 0 {
		p.t.Errorf("%s: the page logged errors:\n  %s", p.name, strings.Join(errs, "\n  "))
	}
}

// do runs actions with the test's timeout.
func (p *tab) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, timeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		state, _ := tryEval[[]byte](p, pageState)
		p.t.Fatalf("%s: %s: %v\npage: %s", p.name, what, err, state)
	}
}

// pageState says where a page is, for failure messages: its URL, the
// alerts that show a message, and the start of its text.
const pageState = `({url: location.href,
  alerts: [...document.querySelectorAll("[role=alert]")].filter(e => e.textContent.trim()).map(e => "#" + e.id + ": " + e.textContent.trim()),
  text: document.body ? document.body.innerText.slice(0, 400) : ""})`

func (p *tab) navigate(url string) {
	p.t.Helper()
	p.do("navigate to "+url, chromedp.Navigate(url))
}

// waitFor waits until an element matching the CSS selector is visible.
func (p *tab) waitFor(sel string) {
	p.t.Helper()
	p.do("wait for "+sel, chromedp.WaitVisible(chromedp.CSS(sel)))
}

// waitGone waits until nothing matches sel.
func (p *tab) waitGone(sel string) {
	p.t.Helper()
	p.do("wait for "+sel+" to go", chromedp.WaitNotPresent(chromedp.CSS(sel)))
}

// click clicks the visible element matching sel, once it is enabled, with
// real mouse events (a user activation, as getDisplayMedia needs).
func (p *tab) click(sel string) {
	p.t.Helper()
	p.do("click "+sel, chromedp.WaitEnabled(chromedp.CSS(sel)), chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible))
}

// typeInto replaces the value of the input sel by typing text.
func (p *tab) typeInto(sel, text string) {
	p.t.Helper()
	p.waitFor(sel)
	eval[bool](p, fmt.Sprintf(`(el => { el.value = ""; return true })(document.querySelector(%q))`, sel))
	p.do("type into "+sel, chromedp.SendKeys(chromedp.CSS(sel), text))
}

// setValue sets an input's value the way a picker does (datetime-local) and
// fires input and change.
func (p *tab) setValue(sel, value string) {
	p.t.Helper()
	p.waitFor(sel)
	js := fmt.Sprintf(`(() => { const el = document.querySelector(%q); el.value = %q;
	  el.dispatchEvent(new Event("input", {bubbles: true})); el.dispatchEvent(new Event("change", {bubbles: true})); return el.value; })()`, sel, value)
	if got := eval[string](p, js); got != value {
		p.t.Fatalf("%s: %s took value %q, want %q", p.name, sel, got, value)
	}
}

// eval evaluates a JavaScript expression (promises awaited) and decodes its
// result into T.
func eval[T any](p *tab, expr string) T {
	p.t.Helper()
	v, err := tryEval[T](p, expr)
	if err != nil {
		p.t.Fatalf("%s: eval %s: %v", p.name, expr, err)
	}
	return v
}

func tryEval[T any](p *tab, expr string) (T, error) {
	ctx, cancel := context.WithTimeout(p.ctx, timeout)
	defer cancel()
	return chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
}

// poll evaluates expr (truthy when done) until it holds, or fails with the
// last value of describe, a JavaScript expression that says what is there.
func (p *tab) poll(what, expr, describe string) {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, err := tryEval[bool](p, "!!("+expr+")")
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			if describe == "" {
				describe = pageState
			}
			state, _ := tryEval[[]byte](p, describe)
			p.t.Fatalf("%s: %s: not after %s (last error %v); state: %s", p.name, what, timeout, err, state)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// text returns the text content of the first element matching sel.
func (p *tab) text(sel string) string {
	p.t.Helper()
	return eval[string](p, fmt.Sprintf(`(document.querySelector(%q) || {}).textContent || ""`, sel))
}

// attr returns an attribute of the first element matching sel ("" when
// either is missing).
func (p *tab) attr(sel, name string) string {
	p.t.Helper()
	return eval[string](p, fmt.Sprintf(`(document.querySelector(%q) || {getAttribute() { return "" }}).getAttribute(%q) || ""`, sel, name))
}

// screenshot writes a PNG of the viewport to the screenshot directory and
// returns its path.
func (p *tab) screenshot(name string) string {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, timeout)
	defer cancel()
	buf, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		p.t.Logf("%s: screenshot %s: %v", p.name, name, err)
		return ""
	}
	path := filepath.Join(screenshotDir(p.t), name+".png")
	if err := os.WriteFile(path, buf, 0o644); err != nil {
		p.t.Errorf("write screenshot: %v", err)
		return ""
	}
	p.t.Logf("screenshot %s", path)
	return path
}

var (
	shotsOnce sync.Once
	shotsDir  string
	shotsErr  error
)

// screenshotDir is $MEETING_SCREENSHOTS, or a temporary directory kept
// after the run (its path is logged).
func screenshotDir(t testing.TB) string {
	shotsOnce.Do(func() {
		shotsDir = os.Getenv("MEETING_SCREENSHOTS")
		if shotsDir == "" {
			shotsDir, shotsErr = os.MkdirTemp("", "meeting-screenshots-")
			return
		}
		shotsErr = os.MkdirAll(shotsDir, 0o755)
	})
	if shotsErr != nil {
		t.Fatalf("screenshot directory: %v", shotsErr)
	}
	return shotsDir
}

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '/' || r == ' ' || r == ':' {
			return '_'
		}
		return r
	}, s)
}

// jsonString quotes s for JavaScript.
func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
