// Package web serves the browser client: one page (index.html) for every
// client route, and its assets, embedded in the binary. Assets live under
// /assets/<hash>/, where the hash covers every embedded file, so they are
// cached for a year and a new build changes every asset URL at once.
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"slices"
	"sort"
	"strings"

	"github.com/gin-gonic/gin"
)

//go:embed static
var files embed.FS

// ContentSecurityPolicy allows the page's own origin only, and blob: and
// mediastream: for media.
const ContentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; " +
	"img-src 'self' data: blob:; media-src 'self' blob: mediastream:; connect-src 'self'; " +
	"object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"

// Routes are the client's pages; each is answered with index.html.
var Routes = []string{"/", "/login", "/register", "/account", "/meetings/new", "/m/:identity"}

// Client serves the page and its assets.
type Client struct {
	static fs.FS
	base   string // "/assets/<hash>"
	index  []byte
}

// New prepares the embedded client: it hashes the files and renders
// index.html with the asset base.
func New() (*Client, error) {
	static, err := fs.Sub(files, "static")
	if err != nil {
		return nil, err
	}
	hash, err := hashFiles(static)
	if err != nil {
		return nil, fmt.Errorf("web: hash assets: %w", err)
	}
	c := &Client{static: static, base: "/assets/" + hash}
	tpl, err := template.ParseFS(static, "index.html")
	if err != nil {
		return nil, fmt.Errorf("web: index.html: %w", err)
	}
	var b bytes.Buffer
	if err := tpl.Execute(&b, struct{ Base string }{c.base}); err != nil {
		return nil, fmt.Errorf("web: index.html: %w", err)
	}
	c.index = b.Bytes()
	return c, nil
}

const (
	assetPath   = "/assets/:hash/*file"
	faviconPath = "/favicon.ico"
)

// Paths are the paths Register mounts, each for GET and HEAD: the pages,
// the assets and the favicon. They are the client's, not the REST API's.
func Paths() []string { return append(slices.Clone(Routes), assetPath, faviconPath) }

// Register mounts the pages, the assets and the favicon on r (GET and HEAD).
func (c *Client) Register(r gin.IRoutes) {
	for _, p := range Routes {
		r.GET(p, c.page)
		r.HEAD(p, c.page)
	}
	r.GET(assetPath, c.asset)
	r.HEAD(assetPath, c.asset)
	r.GET(faviconPath, c.favicon)
	r.HEAD(faviconPath, c.favicon)
}

func securityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", ContentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Permissions-Policy", "camera=(self), microphone=(self), display-capture=(self)")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
}

func (c *Client) page(ctx *gin.Context) {
	h := ctx.Writer.Header()
	securityHeaders(h)
	h.Set("Cache-Control", "no-cache")
	ctx.Data(http.StatusOK, "text/html; charset=utf-8", c.index)
}

func (c *Client) asset(ctx *gin.Context) {
	name := strings.TrimPrefix(path.Clean(ctx.Param("file")), "/")
	if ctx.Param("hash") != strings.TrimPrefix(c.base, "/assets/") {
		// An asset of another build: the page that asks is stale.
		ctx.Header("Cache-Control", "no-store")
		ctx.String(http.StatusNotFound, "no such asset (the page is older than this server: reload it)")
		return
	}
	c.serveFile(ctx, name, "public, max-age=31536000, immutable")
}

func (c *Client) favicon(ctx *gin.Context) { c.serveFile(ctx, "favicon.svg", "public, max-age=86400") }

func (c *Client) serveFile(ctx *gin.Context, name, cache string) {
	if name == "index.html" || name == "" || strings.HasPrefix(name, ".") {
		ctx.String(http.StatusNotFound, "no such asset")
		return
	}
	data, err := fs.ReadFile(c.static, name)
	if err != nil {
		ctx.Header("Cache-Control", "no-store")
		ctx.String(http.StatusNotFound, "no such asset")
		return
	}
	h := ctx.Writer.Header()
	securityHeaders(h)
	h.Set("Cache-Control", cache)
	ctx.Data(http.StatusOK, contentType(name), data)
}

func contentType(name string) string {
	switch path.Ext(name) {
	case ".js":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".svg":
		return "image/svg+xml"
	}
	if t := mime.TypeByExtension(path.Ext(name)); t != "" {
		return t
	}
	return "application/octet-stream"
}

// hashFiles is a short hash over every file's name and content.
func hashFiles(fsys fs.FS) (string, error) {
	var names []string
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			names = append(names, p)
		}
		return err
	})
	if err != nil {
		return "", err
	}
	sort.Strings(names)
	sum := sha256.New()
	for _, n := range names {
		data, err := fs.ReadFile(fsys, n)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(sum, "%s\x00%d\x00", n, len(data))
		sum.Write(data)
	}
	return hex.EncodeToString(sum.Sum(nil))[:12], nil
}
