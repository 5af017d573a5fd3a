package browser

import (
	"fmt"
	"strings"
)

// What a person does on the page, step by step, through the DOM of the
// contract (docs: issue 8's contract, section 3).

// password is every test user's password.
func password(user string) string { return user + "-password" }

// register creates the account through /register; the page logs in and
// shows the list.
func (p *tab) register(base, user string) { p.t.Helper(); p.submitAccount(base, "register", user) }

// login logs in through /login.
func (p *tab) login(base, user string) { p.t.Helper(); p.submitAccount(base, "login", user) }

// submitAccount fills and submits the form of /register or /login (the
// same ids but for their prefix) and waits for the list.
func (p *tab) submitAccount(base, form, user string) {
	p.t.Helper()
	p.fillAccount(base, form, user, password(user))
	p.loggedInAs(user)
}

// fillAccount opens /register or /login and submits user and pw.
func (p *tab) fillAccount(base, form, user, pw string) {
	p.t.Helper()
	p.navigate(base + "/" + form)
	p.typeInto("#"+form+"-username", user)
	p.typeInto("#"+form+"-password", pw)
	p.click("#" + form + "-submit")
}

func (p *tab) loggedInAs(user string) {
	p.t.Helper()
	p.poll("logged in as "+user+" on the list",
		fmt.Sprintf(`location.pathname === "/" && (document.querySelector("#whoami") || {}).textContent.trim() === %s && document.querySelector("#new-meeting")`, jsonString(user)),
		`({path: location.pathname, whoami: (document.querySelector("#whoami") || {}).textContent, errors: [...document.querySelectorAll("[role=alert]")].map(e => e.id + ": " + e.textContent)})`)
}

// nowLocal is the browser's current minute as a datetime-local value.
const nowLocal = `(() => { const d = new Date(), p = n => String(n).padStart(2, "0");
  return d.getFullYear() + "-" + p(d.getMonth() + 1) + "-" + p(d.getDate()) + "T" + p(d.getHours()) + ":" + p(d.getMinutes()); })()`

// schedule creates a meeting that starts now, from the list's "new
// meeting" link, and returns its identity from the meeting page's path.
func (p *tab) schedule(name string, minutes int, participants ...string) string {
	p.t.Helper()
	p.click("#new-meeting")
	p.waitFor("form#meeting-form")
	p.typeInto("#meeting-name", name)
	p.setValue("#meeting-start", eval[string](p, nowLocal))
	p.typeInto("#meeting-duration", fmt.Sprint(minutes))
	if len(participants) > 0 {
		p.typeInto("#meeting-participants", strings.Join(participants, ", "))
	}
	p.click("#meeting-submit")
	p.poll("on the new meeting's page", `location.pathname.startsWith("/m/") && document.querySelector("#meeting-title")`,
		`({path: location.pathname, error: (document.querySelector("#meeting-error") || {}).textContent})`)
	p.poll("the title shows the name", fmt.Sprintf(`document.querySelector("#meeting-title").textContent.includes(%s)`, jsonString(name)),
		`document.querySelector("#meeting-title").textContent`)
	return eval[string](p, `decodeURIComponent(location.pathname.slice(3))`)
}

// invite adds a member through the meeting page's invite form.
func (p *tab) invite(user string) {
	p.t.Helper()
	p.typeInto("#invite-username", user)
	p.click("#invite-submit")
	p.waitFor(fmt.Sprintf(`li.member[data-username=%s]`, jsonString(user)))
}

// openFromList opens the meeting from the list of my meetings.
func (p *tab) openFromList(base, identity string) {
	p.t.Helper()
	p.navigate(base + "/")
	sel := fmt.Sprintf(`li.meeting[data-identity=%s] a.meeting-open`, jsonString(identity))
	p.waitFor(sel)
	p.click(sel)
	p.waitFor("#join")
}

// prejoin opens the pre-join from the meeting page.
func (p *tab) prejoin() {
	p.t.Helper()
	p.click("#join")
	p.waitFor("section#prejoin")
	p.waitFor("#join-call")
}

// previewPlays waits until the pre-join preview shows the camera.
func (p *tab) previewPlays() {
	p.t.Helper()
	p.poll("the preview plays the camera", `document.querySelector("video#preview").videoWidth > 0`, "")
}

// joinCall joins from the pre-join and waits until the call is connected.
func (p *tab) joinCall() {
	p.t.Helper()
	p.click("#join-call")
	p.waitFor("section#call")
	p.callState("connected")
}

// callState waits until #call-status says state.
func (p *tab) callState(state string) {
	p.t.Helper()
	p.poll("call status "+state, fmt.Sprintf(`(document.querySelector("#call-status") || {dataset: {}}).dataset.state === %s`, jsonString(state)),
		`({state: (document.querySelector("#call-status") || {dataset: {}}).dataset.state, text: (document.querySelector("#call-status") || {}).textContent,
		   error: (document.querySelector("#call-error") || {}).textContent, states: window.__states})`)
}

// tileOf selects the camera tile of user (not a screen share).
func tileOf(user string) string {
	return fmt.Sprintf(`#tiles .tile[data-user=%s]:not(.screen)`, jsonString(user))
}

// seesVideo waits until the tile's video plays.
func (p *tab) seesVideo(tile string) {
	p.t.Helper()
	p.poll(tile+" plays video", fmt.Sprintf(`(document.querySelector(%s) || {}).videoWidth > 0`, jsonString(tile+" video")),
		`[...document.querySelectorAll("#tiles .tile")].map(t => t.outerHTML.slice(0, 300))`)
}

// tiles describes the tiles, for failure messages.
const tiles = `({count: (document.querySelector("#tiles") || {dataset: {}}).dataset.count,
  tiles: [...document.querySelectorAll("#tiles .tile")].map(t => ({cls: t.className, user: t.dataset.user, participant: t.dataset.participant,
    audioMuted: t.dataset.audioMuted, videoMuted: t.dataset.videoMuted, name: (t.querySelector(".tile-name") || {}).textContent}))})`
