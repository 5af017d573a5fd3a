package web

import (
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/gin-gonic/gin"
)

func client(t *testing.T) (*Client, http.Handler) {
	t.Helper()
	gin.SetMode(gin.TestMode)
	c, err := New()
	if err != nil {
		t.Fatal(err)
	}
	r := gin.New()
	c.Register(r)
	return c, r
}

func get(h http.Handler, method, path string) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(method, path, nil))
	return w
}

func TestPagesServeIndexWithHeaders(t *testing.T) {
	c, h := client(t)
	for _, p := range []string{"/", "/login", "/register", "/account", "/meetings/new", "/m/0b6e1c3a-4d51-4a3c-9f4e-2f1d7c9a8b10"} {
		w := get(h, http.MethodGet, p)
		if w.Code != http.StatusOK {
			t.Fatalf("GET %s: %d", p, w.Code)
		}
		if ct := w.Header().Get("Content-Type"); ct != "text/html; charset=utf-8" {
			t.Errorf("GET %s: Content-Type %q", p, ct)
		}
		if cc := w.Header().Get("Cache-Control"); cc != "no-cache" {
			t.Errorf("GET %s: Cache-Control %q", p, cc)
		}
		if csp := w.Header().Get("Content-Security-Policy"); csp != ContentSecurityPolicy {
			t.Errorf("GET %s: CSP %q", p, csp)
		}
		if w.Header().Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET %s: no nosniff", p)
		}
		body := w.Body.String()
		if !strings.Contains(body, `src="`+c.base+`/js/app.js"`) {
			t.Errorf("GET %s: index does not load %s/js/app.js:\n%s", p, c.base, body)
		}
	}
}

// The page must not need 'unsafe-inline': no inline script, no style
// attribute, no inline handler.
func TestIndexHasNothingInline(t *testing.T) {
	c, _ := client(t)
	body := string(c.index)
	for _, re := range []string{`<script(?:\s[^>]*)?>\s*[^<\s]`, `\sstyle=`, `\son[a-z]+=`, `<style`} {
		if regexp.MustCompile(re).MatchString(body) {
			t.Errorf("index.html matches %s", re)
		}
	}
}

func TestAssets(t *testing.T) {
	c, h := client(t)
	for file, ct := range map[string]string{
		"/js/app.js":   "text/javascript; charset=utf-8",
		"/app.css":     "text/css; charset=utf-8",
		"/favicon.svg": "image/svg+xml",
	} {
		w := get(h, http.MethodGet, c.base+file)
		if w.Code != http.StatusOK {
			t.Fatalf("GET %s: %d", file, w.Code)
		}
		if got := w.Header().Get("Content-Type"); got != ct {
			t.Errorf("GET %s: Content-Type %q, want %q", file, got, ct)
		}
		if got := w.Header().Get("Cache-Control"); got != "public, max-age=31536000, immutable" {
			t.Errorf("GET %s: Cache-Control %q", file, got)
		}
		if w.Body.Len() == 0 {
			t.Errorf("GET %s: empty", file)
		}
	}
	if w := get(h, http.MethodGet, "/favicon.ico"); w.Code != http.StatusOK || w.Header().Get("Content-Type") != "image/svg+xml" {
		t.Errorf("favicon.ico: %d %q", w.Code, w.Header().Get("Content-Type"))
	}
	for _, p := range []string{
		"/assets/000000000000/js/app.js", // another build's asset
		c.base + "/index.html",           // the template is not an asset
		c.base + "/nope.js",
		c.base + "/../web.go",
	} {
		if w := get(h, http.MethodGet, p); w.Code != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", p, w.Code)
		} else if cc := w.Header().Get("Cache-Control"); strings.Contains(cc, "immutable") {
			t.Errorf("GET %s: a 404 is cached: %q", p, cc)
		}
	}
}

func TestHashCoversNamesAndContent(t *testing.T) {
	c, _ := client(t)
	if !regexp.MustCompile(`^/assets/[0-9a-f]{12}$`).MatchString(c.base) {
		t.Fatalf("base %q", c.base)
	}
	hash := func(fsys fstest.MapFS) string {
		h, err := hashFiles(fsys)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	a := hash(fstest.MapFS{"a.js": {Data: []byte("x")}, "b.css": {Data: []byte("y")}})
	if b := hash(fstest.MapFS{"a.js": {Data: []byte("x")}, "b.css": {Data: []byte("z")}}); a == b {
		t.Error("the hash ignores content")
	}
	if b := hash(fstest.MapFS{"a.js": {Data: []byte("x")}, "c.css": {Data: []byte("y")}}); a == b {
		t.Error("the hash ignores names")
	}
	if b := hash(fstest.MapFS{"b.css": {Data: []byte("y")}, "a.js": {Data: []byte("x")}}); a != b {
		t.Error("the hash depends on order")
	}
}
