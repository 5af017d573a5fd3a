package browser

import (
	"strings"
	"testing"
	"time"
)

// TestMeetingEnds: in a call of a meeting that is about to end, the page
// counts down to the end, shows the server's end-of-meeting warning, and,
// when the room closes (end + --end-grace), ends the call without trying
// to reconnect.
func TestMeetingEnds(t *testing.T) {
	t.Parallel()
	s := shared(t)
	// The administrator standalone made at its first start: the suite's
	// other tests use up the registrations one address may make.
	p := newTab(t, s.browser, s.base, "root")
	p.fillAccount(s.base, "login", "root", adminPassword)
	p.loggedInAs("root")
	// The schedule form counts in whole minutes; a meeting ending in 20 s
	// is made through the API with the page's own session.
	id := eval[string](p, `fetch("/auth/meeting/create", {method: "POST",
		headers: {"Content-Type": "application/json", Authorization: "Bearer " + sessionStorage.getItem("meeting.token")},
		body: JSON.stringify({name: "Short", begin_at: Date.now(), end_at: Date.now() + 20000})})
		.then((r) => r.json()).then((j) => j.data.identity)`)
	p.navigate(s.base + "/m/" + id)
	p.waitFor("#join")
	p.prejoin()
	p.joinCall()

	p.poll("#call-countdown counts down", `/\d/.test((document.querySelector("#call-countdown") || {}).textContent || "")`, "")
	t.Logf("countdown: %q", strings.TrimSpace(p.text("#call-countdown")))
	p.poll("#call-warning shows the server's warning", `(el => el && el.checkVisibility() && el.textContent.trim() !== "")(document.querySelector("#call-warning"))`,
		`(document.querySelector("#call-warning") || {outerHTML: "missing"}).outerHTML`)
	t.Logf("warning: %q", strings.TrimSpace(p.text("#call-warning")))
	p.callState("ended")
	p.poll("every socket closed", `window.__wss.every((ws) => ws.readyState === WebSocket.CLOSED)`, `window.__wss.map((ws) => ws.readyState)`)
	wss := eval[int](p, `window.__wss.length`)
	time.Sleep(3 * time.Second) // longer than the first reconnect's backoff (1 s)
	if again := eval[int](p, `window.__wss.length`); again != wss {
		t.Errorf("the page opened %d more sockets after the room closed", again-wss)
	}
	if got := eval[[]string](p, `window.__states`); strings.Contains(strings.Join(got, ","), "ended,reconnecting") {
		t.Errorf("the page tried to reconnect after the room closed: %v", got)
	}
}
