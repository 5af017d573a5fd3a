package browser

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// update copies the call test's screenshots of the meeting list, the
// pre-join and the call into docs/images (call.png is the README's);
// MEETING_UPDATE_SCREENSHOTS=1 does the same.
var update = flag.Bool("update", false, "write the call test's screenshots into docs/images")

// docsScreenshot takes a screenshot and, with -update, copies it into
// docs/images.
func docsScreenshot(p *tab, name string) {
	p.t.Helper()
	path := p.screenshot(name)
	if path != "" && (*update || os.Getenv("MEETING_UPDATE_SCREENSHOTS") != "") {
		copyFile(p.t, path, filepath.Join("..", "..", "docs", "images", name+".png"))
	}
}

// TestCall is the call, through the page only: alice and bob
// register, alice schedules a meeting that starts now and invites bob, both
// join with Chromium's fake camera and microphone, and then, in one
// meeting: video and audio both ways, chat, mute, screen share, a dropped
// WebSocket and the reconnect, the host's mute, leave, the same call
// relay-only through TURN, and the host's remove. No page may log an error.
// The steps depend on each other: the first failure stops the rest.
func TestCall(t *testing.T) {
	s := shared(t)
	alice := newTab(t, s.browser, s.base, "alice")
	bob := newTab(t, s.browser, s.base, "bob")
	var identity string
	step := func(name string, f func(t *testing.T, alice, bob *tab)) {
		if t.Failed() {
			return
		}
		t.Run(name, func(t *testing.T) {
			a, b := alice.in(t), bob.in(t)
			f(t, a, b)
			a.checkErrors()
			b.checkErrors()
		})
	}

	step("accounts and meeting", func(t *testing.T, alice, bob *tab) {
		alice.register(s.base, "alice")
		bob.register(s.base, "bob")
		identity = alice.schedule("Standup", 30)
		alice.invite("bob")
		// bob finds it in his list, with its phase and countdown.
		bob.navigate(s.base + "/")
		row := fmt.Sprintf(`li.meeting[data-identity=%s]`, jsonString(identity))
		bob.waitFor(row + " .meeting-name")
		if got := bob.text(row + " .meeting-name"); got != "Standup" {
			t.Errorf("bob's list names the meeting %q, want Standup", got)
		}
		bob.waitFor(row + " .meeting-phase")
		docsScreenshot(bob, "meeting-list")
		bob.openFromList(s.base, identity)
	})

	step("join and media both ways", func(t *testing.T, alice, bob *tab) {
		alice.prejoin()
		alice.previewPlays()
		docsScreenshot(alice, "prejoin")
		alice.joinCall()
		bob.prejoin()
		bob.previewPlays()
		bob.joinCall()
		for _, c := range []struct {
			p     *tab
			other string
		}{{alice, "bob"}, {bob, "alice"}} {
			c.p.waitFor(tileOf(c.other))
			c.p.seesVideo(tileOf(c.other))
			c.p.waitFor(".tile.self")
			if got := c.p.text(tileOf(c.other) + " .tile-name"); got == "" {
				t.Errorf("%s: %s's tile has no name", c.p.name, c.other)
			}
			c.p.poll("two tiles", `document.querySelector("#tiles").dataset.count === "2"`, tiles)
		}
		t.Logf("alice receives %+v", alice.mediaFlows())
		t.Logf("bob receives %+v", bob.mediaFlows())
		// Chromium's fake microphone beeps: someone is the active speaker
		// now and then. The countdown shows the time left.
		alice.poll("a tile is shown speaking", `document.querySelector("#tiles .tile.speaking")`, tiles)
		alice.poll("the countdown shows", `document.querySelector("#call-countdown").textContent.trim() !== ""`, "")
		docsScreenshot(alice, "call")
	})

	step("usable at a phone's width", phoneWidth)
	step("chat with the sender's name", chat)
	step("mute, camera off and a raised hand show to the other", mute)
	step("screen share seen and ended", screenShare)
	step("a dropped WebSocket reconnects and media resumes", reconnect)
	step("the host mutes bob", hostMute)

	step("leave removes the tile for the other", func(t *testing.T, alice, bob *tab) {
		bob.click("#leave")
		bob.waitFor("#join")
		alice.waitGone(tileOf("bob"))
		alice.poll("one tile", `document.querySelector("#tiles").dataset.count === "1"`, tiles)
		alice.click("#leave")
		alice.waitFor("#join")
	})

	step("relay-only through TURN", func(t *testing.T, alice, bob *tab) {
		for _, p := range []*tab{alice, bob} {
			p.navigate(s.base + "/m/" + identity + "?relay=1")
			p.prejoin()
			p.joinCall()
		}
		alice.waitFor(tileOf("bob"))
		bob.waitFor(tileOf("alice"))
		for _, p := range []*tab{alice, bob} {
			p.mediaFlows()
			st := p.stats()
			if len(st.SelectedLocal) == 0 || slices.ContainsFunc(st.SelectedLocal, func(c string) bool { return c != "relay" }) {
				t.Errorf("%s: selected local candidates %v, want relay only", p.name, st.SelectedLocal)
			}
			if got := eval[[]string](p, `window.__pcs.filter(pc => pc.connectionState !== "closed").map(pc => pc.getConfiguration().iceTransportPolicy)`); len(got) == 0 || slices.ContainsFunc(got, func(c string) bool { return c != "relay" }) {
				t.Errorf("%s: iceTransportPolicy %v, want relay", p.name, got)
			}
			t.Logf("%s receives %+v", p.name, st)
		}
	})

	step("the host removes bob", func(t *testing.T, alice, bob *tab) {
		bobID := alice.attr(tileOf("bob"), "data-participant")
		alice.click("#toggle-people")
		alice.waitFor("aside#people")
		alice.click(fmt.Sprintf(`#people-list li[data-participant=%s] button.host-remove`, jsonString(bobID)))
		bob.callState("removed")
		alice.waitGone(tileOf("bob"))
		// The server closes bob's socket; the page must not reconnect.
		bob.poll("bob's sockets closed", `window.__wss.every(ws => ws.readyState === WebSocket.CLOSED)`, `window.__wss.map(ws => ws.readyState)`)
		if got := bob.attr("#call-status", "data-state"); got != "removed" {
			t.Errorf("bob's call status is %q after removal, want removed", got)
		}
		alice.click("#leave")
	})
}

// phoneWidth: at a phone's width the call fits the screen (no sideways
// scrolling) and every control is on it.
func phoneWidth(t *testing.T, alice, bob *tab) {
	alice.do("phone viewport", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile))
	defer alice.do("desktop viewport", chromedp.EmulateReset())
	alice.poll("the call fits 390 px", `document.documentElement.scrollWidth <= window.innerWidth`,
		`({scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth})`)
	for _, c := range []string{"#toggle-mic", "#toggle-cam", "#toggle-screen", "#raise-hand", "#toggle-chat", "#toggle-people", "#leave"} {
		alice.poll(c+" is on the screen", fmt.Sprintf(`(r => r.width > 0 && r.left >= 0 && r.right <= window.innerWidth && r.bottom <= window.innerHeight)(document.querySelector(%q).getBoundingClientRect())`, c),
			fmt.Sprintf(`JSON.stringify(document.querySelector(%q).getBoundingClientRect())`, c))
	}
	alice.screenshot("call-phone")
}

// chat: a message alice types appears in bob's chat with her name and a
// time, counted as unread while his chat is closed.
func chat(t *testing.T, alice, bob *tab) {
	alice.click("#toggle-chat")
	alice.waitFor("aside#chat")
	alice.typeInto("#chat-input", "hello bob")
	alice.click("#chat-send")
	alice.waitFor("#chat-messages li.chat-message")
	// bob's chat is closed: the unread mark counts it.
	bob.poll("bob's unread mark", `!document.querySelector("#chat-unread").hidden && document.querySelector("#chat-unread").textContent.includes("1")`,
		`document.querySelector("#chat-unread").outerHTML`)
	bob.click("#toggle-chat")
	bob.waitFor("aside#chat")
	msg := `#chat-messages li.chat-message`
	bob.poll("bob sees alice's message", fmt.Sprintf(`[...document.querySelectorAll(%q)].some(m => m.querySelector(".chat-text").textContent.includes("hello bob") && m.querySelector(".chat-name").textContent.includes("alice") && m.querySelector(".chat-time").textContent.trim() !== "")`, msg),
		fmt.Sprintf(`[...document.querySelectorAll(%q)].map(m => m.textContent)`, msg))
	bob.poll("the unread mark goes when the chat is open", `document.querySelector("#chat-unread").hidden`, "")
	alice.click("#toggle-chat")
	bob.click("#toggle-chat")
}

// mute: bob's mute shows on his tile for alice, and so does his unmute;
// likewise his camera off and his raised hand (raised and lowered with the
// keyboard).
func mute(t *testing.T, alice, bob *tab) {
	tile := tileOf("bob")
	pressed := func(button, want string) {
		t.Helper()
		bob.poll(fmt.Sprintf("bob's %s says aria-pressed=%s", button, want), fmt.Sprintf(`document.querySelector(%q).getAttribute("aria-pressed") === %q`, button, want), "")
	}
	bob.click("#toggle-mic")
	pressed("#toggle-mic", "true")
	alice.poll("alice sees bob muted", fmt.Sprintf(`document.querySelector(%q).dataset.audioMuted === "true" && document.querySelector(%q)?.checkVisibility()`, tile, tile+" .tile-muted"), tiles)
	bob.click("#toggle-mic")
	pressed("#toggle-mic", "false")
	alice.poll("alice sees bob unmuted", fmt.Sprintf(`document.querySelector(%q).dataset.audioMuted !== "true" && !document.querySelector(%q)?.checkVisibility()`, tile, tile+" .tile-muted"), tiles)

	bob.click("#toggle-cam")
	pressed("#toggle-cam", "true")
	alice.poll("alice sees bob's camera off", fmt.Sprintf(`document.querySelector(%q).dataset.videoMuted === "true"`, tile), tiles)
	bob.click("#toggle-cam")
	pressed("#toggle-cam", "false")
	alice.poll("alice sees bob's camera on", fmt.Sprintf(`document.querySelector(%q).dataset.videoMuted !== "true"`, tile), tiles)
	alice.seesVideo(tile)

	// The hand by keyboard: Enter raises it, Space lowers it.
	bob.do("Enter on #raise-hand", chromedp.Focus(chromedp.CSS("#raise-hand")), chromedp.KeyEvent(kb.Enter))
	pressed("#raise-hand", "true")
	alice.poll("alice sees bob's hand", fmt.Sprintf(`document.querySelector(%q)?.checkVisibility()`, tile+" .tile-hand"), tiles)
	bob.do("Space on #raise-hand", chromedp.Focus(chromedp.CSS("#raise-hand")), chromedp.KeyEvent(" "))
	pressed("#raise-hand", "false")
	alice.poll("alice sees bob's hand down", fmt.Sprintf(`!document.querySelector(%q)?.checkVisibility()`, tile+" .tile-hand"), tiles)
}

// screenShare: alice's screen share is seen large by bob and ends for him
// when she stops it.
func screenShare(t *testing.T, alice, bob *tab) {
	alice.click("#toggle-screen")
	alice.poll("alice's share button says sharing", `document.querySelector("#toggle-screen").getAttribute("aria-pressed") === "true"`, "")
	share := fmt.Sprintf(`#tiles .tile.screen.stage[data-participant=%s]`, jsonString(alice.attr(".tile.self", "data-participant")))
	bob.waitFor(share)
	bob.seesVideo(share)
	alice.click("#toggle-screen")
	alice.poll("alice's share button says not sharing", `document.querySelector("#toggle-screen").getAttribute("aria-pressed") === "false"`, "")
	bob.waitGone("#tiles .tile.screen")
}

// reconnect: bob's WebSocket is closed under him; the page says it
// reconnects, joins again, media flows both ways and the chat is kept once.
func reconnect(t *testing.T, alice, bob *tab) {
	sockets := eval[int](bob, `window.__wss.length`)
	eval[bool](bob, `window.__states = []; window.__wss[window.__wss.length - 1].close(); true`)
	bob.poll("bob reconnects", `window.__states.includes("reconnecting") && window.__states.at(-1) === "connected"`,
		`({states: window.__states, text: document.querySelector("#call-status").textContent})`)
	if got := eval[int](bob, `window.__wss.length`); got <= sockets {
		t.Errorf("bob has %d WebSockets after the reconnect, want a new one after %d", got, sockets)
	}
	bob.waitFor(tileOf("alice"))
	bob.seesVideo(tileOf("alice"))
	alice.waitFor(tileOf("bob"))
	alice.seesVideo(tileOf("bob"))
	t.Logf("bob receives %+v", bob.mediaFlows())
	t.Logf("alice receives %+v", alice.mediaFlows())
	bob.poll("bob keeps the chat history once", `[...document.querySelectorAll("#chat-messages li.chat-message")].filter(m => m.textContent.includes("hello bob")).length === 1`,
		`[...document.querySelectorAll("#chat-messages li.chat-message")].map(m => m.textContent)`)
}

// hostMute: alice, the host, mutes bob from the participant list; bob,
// no host, has no host controls, and can unmute himself.
func hostMute(t *testing.T, alice, bob *tab) {
	bobID := alice.attr(tileOf("bob"), "data-participant")
	alice.click("#toggle-people")
	alice.waitFor("aside#people")
	row := fmt.Sprintf(`#people-list li[data-participant=%s]`, jsonString(bobID))
	alice.click(row + " button.host-mute")
	bob.poll("bob's mic button says muted", `document.querySelector("#toggle-mic").getAttribute("aria-pressed") === "true"`, "")
	alice.poll("alice sees bob muted", fmt.Sprintf(`document.querySelector(%q).dataset.audioMuted === "true"`, tileOf("bob")), tiles)
	// bob is no host: he has no host controls.
	bob.click("#toggle-people")
	bob.waitFor("aside#people")
	if n := eval[int](bob, `document.querySelectorAll("#people-list button.host-mute, #people-list button.host-remove").length`); n != 0 {
		t.Errorf("bob, not the host, has %d host buttons", n)
	}
	bob.click("#toggle-people")
	alice.click("#toggle-people")
	// bob unmutes himself.
	bob.click("#toggle-mic")
	alice.poll("alice sees bob unmuted", fmt.Sprintf(`document.querySelector(%q).dataset.audioMuted !== "true"`, tileOf("bob")), tiles)
}

func copyFile(t testing.TB, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s", to)
}
