package browser

import (
	"fmt"
	"io"
	"net/http"
	"path"
	"regexp"
	"strings"
	"testing"
)

// TestServing checks what the binary serves at / and under /assets/: the
// security headers, the content types and the caching of the contract's
// section 2, and that the page has no inline script or style.
func TestServing(t *testing.T) {
	t.Parallel()
	s := shared(t)
	get := func(p string) (*http.Response, string) {
		t.Helper()
		res, err := http.Get(s.base + p)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %s", p, res.Status)
		}
		return res, string(b)
	}
	const csp = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; " +
		"media-src 'self' blob: mediastream:; connect-src 'self'; object-src 'none'; base-uri 'none'; " +
		"frame-ancestors 'none'; form-action 'self'"
	security := map[string]string{
		"Content-Security-Policy": csp,
		"X-Content-Type-Options":  "nosniff",
		"Referrer-Policy":         "no-referrer",
		"Permissions-Policy":      "camera=(self), microphone=(self), display-capture=(self)",
	}
	var index string
	for _, p := range []string{"/", "/login", "/register", "/account", "/meetings/new", "/m/some-meeting"} {
		res, body := get(p)
		for k, v := range security {
			if got := res.Header.Get(k); got != v {
				t.Errorf("GET %s: %s = %q, want %q", p, k, got, v)
			}
		}
		if got := res.Header.Get("Content-Type"); !strings.HasPrefix(got, "text/html") {
			t.Errorf("GET %s: Content-Type %q, want text/html", p, got)
		}
		if got := res.Header.Get("Cache-Control"); got != "no-cache" {
			t.Errorf("GET %s: Cache-Control %q, want no-cache", p, got)
		}
		if index == "" {
			index = body
		} else if body != index {
			t.Errorf("GET %s is not the same index.html as /", p)
		}
	}
	if regexp.MustCompile(`(?i)<script(\s[^>]*)?>\s*[^<\s]`).MatchString(index) || regexp.MustCompile(`(?i)\sstyle\s*=`).MatchString(index) {
		t.Errorf("index.html has an inline script or style:\n%s", index)
	}
	assets := regexp.MustCompile(`/assets/[0-9a-zA-Z_-]+/[^"'\s>]+`).FindAllString(index, -1)
	if len(assets) == 0 {
		t.Fatalf("index.html links no /assets/<hash>/ file:\n%s", index)
	}
	types := map[string]string{".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml", ".ico": "image/"}
	for _, a := range assets {
		res, _ := get(a)
		if got := res.Header.Get("Cache-Control"); got != "public, max-age=31536000, immutable" {
			t.Errorf("GET %s: Cache-Control %q, want public, max-age=31536000, immutable", a, got)
		}
		if want, ok := types[path.Ext(a)]; ok && !strings.HasPrefix(res.Header.Get("Content-Type"), want) {
			t.Errorf("GET %s: Content-Type %q, want %s", a, res.Header.Get("Content-Type"), want)
		}
		if got := res.Header.Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("GET %s: X-Content-Type-Options %q, want nosniff", a, got)
		}
	}
	if !strings.Contains(index, `rel="icon"`) {
		if res, _ := get("/favicon.ico"); !strings.HasPrefix(res.Header.Get("Content-Type"), "image/") {
			t.Errorf("GET /favicon.ico: Content-Type %q, want an image", res.Header.Get("Content-Type"))
		}
	}
}

// TestSessionEnds: a 401 from the API drops the token and shows the login
// page with #session-message.
func TestSessionEnds(t *testing.T) {
	t.Parallel()
	s := shared(t)
	p := newTab(t, s.browser, s.base, "carol")
	p.register(s.base, "carol")
	p.allowErrors("status of 401")
	eval[bool](p, `sessionStorage.setItem("meeting.token", "not-a-valid-token"); true`)
	p.navigate(s.base + "/")
	p.waitFor("#session-message")
	if got := strings.TrimSpace(p.text("#session-message")); got == "" {
		t.Error("#session-message is empty, want the session ended")
	}
	p.waitFor("form#login-form")
	if got := eval[*string](p, `sessionStorage.getItem("meeting.token")`); got != nil {
		t.Errorf("the token %q is still in sessionStorage after a 401", *got)
	}
	// Logging in again works, and logging out shows the login page.
	p.login(s.base, "carol")
	p.click("#logout")
	p.waitFor("form#login-form")
}

// TestErrorsShowInTheForm: an API error appears in the form's alert.
func TestErrorsShowInTheForm(t *testing.T) {
	t.Parallel()
	s := shared(t)
	p := newTab(t, s.browser, s.base, "dan")
	p.register(s.base, "dan")
	p.click("#logout")
	p.waitFor("form#login-form")
	// The failed requests are the point here; the browser logs them.
	p.allowErrors("Failed to load resource")

	p.fillAccount(s.base, "register", "dan", password("dan"))
	alert(p, "#register-error")
	p.fillAccount(s.base, "login", "dan", "wrong-password")
	alert(p, "#login-error")

	p.login(s.base, "dan")
	p.click("#new-meeting")
	p.waitFor("form#meeting-form")
	p.typeInto("#meeting-name", "with a stranger")
	p.setValue("#meeting-start", eval[string](p, nowLocal))
	p.typeInto("#meeting-participants", "nobody-has-this-name")
	p.click("#meeting-submit")
	alert(p, "#meeting-error")
}

// alert waits until the alert sel shows a message.
func alert(p *tab, sel string) {
	p.t.Helper()
	p.poll(sel+" shows the error", fmt.Sprintf(`(el => el && el.getAttribute("role") === "alert" && el.checkVisibility() && el.textContent.trim() !== "")(document.querySelector(%q))`, sel),
		fmt.Sprintf(`(document.querySelector(%q) || {outerHTML: "missing"}).outerHTML`, sel))
	p.t.Logf("%s: %s says %q", p.name, sel, strings.TrimSpace(p.text(sel)))
}

// TestPrejoinWithoutDevices: in a browser with no camera and no
// microphone the pre-join says so, and joining to watch and listen works.
func TestPrejoinWithoutDevices(t *testing.T) {
	s := shared(t)
	bare, err := startBrowser(t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(bare.stop)
	watcher := newTab(t, bare, s.base, "erin")
	speaker := newTab(t, s.browser, s.base, "fay")
	speaker.register(s.base, "fay")
	watcher.register(s.base, "erin")
	id := speaker.schedule("Talk", 30, "erin")
	speaker.prejoin()
	speaker.joinCall()

	watcher.openFromList(s.base, id)
	watcher.prejoin()
	watcher.poll("#prejoin-message says there is no device", `(el => el && el.checkVisibility() && el.textContent.trim() !== "")(document.querySelector("#prejoin-message"))`,
		`(document.querySelector("#prejoin-message") || {outerHTML: "missing"}).outerHTML`)
	t.Logf("#prejoin-message: %q", strings.TrimSpace(watcher.text("#prejoin-message")))
	watcher.joinCall()
	watcher.waitFor(tileOf("fay"))
	watcher.seesVideo(tileOf("fay"))
	t.Logf("erin receives %+v", watcher.mediaFlows())
	speaker.waitFor(tileOf("erin"))
	speaker.click("#leave")
	watcher.click("#leave")
}

// TestAccountAndMeetingPages: change the password and log in with the new
// one; schedule a meeting with a participant, edit it, remove the
// participant, keep it at the delete dialog's "no", delete it at "yes".
func TestAccountAndMeetingPages(t *testing.T) {
	t.Parallel()
	s := shared(t)
	guest := newTab(t, s.browser, s.base, "hal")
	guest.register(s.base, "hal")
	p := newTab(t, s.browser, s.base, "gil")
	p.register(s.base, "gil")

	p.click("#account-link")
	p.waitFor("form#password-form")
	p.typeInto("#password-old", password("gil"))
	p.typeInto("#password-new", "gil-new-password")
	p.click("#password-submit")
	p.poll("#password-ok says so", `(el => el && el.checkVisibility() && el.textContent.trim() !== "")(document.querySelector("#password-ok"))`, "")
	p.click("#logout")
	p.waitFor("form#login-form")
	p.fillAccount(s.base, "login", "gil", "gil-new-password")
	p.loggedInAs("gil")

	id := p.schedule("Planning", 45, "hal")
	p.waitFor(`li.member[data-username="hal"]`)
	if link, here := eval[string](p, `document.querySelector("#meeting-link").value`), eval[string](p, "location.href"); link != here {
		t.Errorf("#meeting-link is %q, want the page's URL %q", link, here)
	}
	p.click("#edit-meeting")
	p.waitFor("form#meeting-form")
	p.typeInto("#meeting-name", "Planning, moved")
	p.click("#meeting-submit")
	p.poll("the title shows the new name", `document.querySelector("#meeting-title").textContent.includes("Planning, moved")`, "")

	p.click(`li.member[data-username="hal"] button.remove-member`)
	p.waitGone(`li.member[data-username="hal"]`)

	p.click("#delete-meeting")
	p.poll("the dialog asks", `document.querySelector("dialog#confirm-dialog").open`, "")
	p.click("#confirm-no")
	p.poll("no keeps it", `!document.querySelector("dialog#confirm-dialog").open && location.pathname === "/m/" + `+jsonString(id), "")
	p.click("#delete-meeting")
	p.click("#confirm-yes")
	p.poll("yes deletes it and shows the list", `location.pathname === "/"`, "")
	p.waitFor("#meetings-empty")
	p.waitGone(`li.meeting[data-identity=` + jsonString(id) + `]`)
}
