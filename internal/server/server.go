// Package server is the REST API: the seed project's routes and envelope,
// accounts, meetings and their participants, health and metrics.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"meeting.dev/meeting/docs"
	"meeting.dev/meeting/internal/auth"
	"meeting.dev/meeting/internal/meeting"
	"meeting.dev/meeting/internal/web"
)

// Accounts is what the account handlers need of the database. Its errors
// wrap meeting.ErrNotFound and meeting.ErrConflict where those apply.
type Accounts interface {
	// Ping checks that the database answers (readiness).
	Ping(ctx context.Context) error
	CreateUser(ctx context.Context, username, passwordHash string) (meeting.Account, error)
	UserByName(ctx context.Context, username string) (meeting.Account, error)
	UserByID(ctx context.Context, id uint64) (meeting.Account, error)
	// SetPassword replaces a password hash without revoking tokens (the
	// re-hash of a seed password at login).
	SetPassword(ctx context.Context, id uint64, passwordHash string) error
	// ChangePassword replaces a password hash and increments the token
	// generation, revoking older tokens; it returns the new generation.
	ChangePassword(ctx context.Context, id uint64, passwordHash string) (uint64, error)
}

// Config holds the API's dependencies and limits.
type Config struct {
	Accounts Accounts
	// Meetings is the meeting service every meeting route calls.
	Meetings *meeting.Service
	Tokens   *auth.Tokens
	Hasher   auth.Hasher
	Log      *slog.Logger
	// Registry receives the HTTP metrics and is served at /metrics.
	Registry *prometheus.Registry
	// LoginThrottle limits login attempts and password changes per client
	// address and username and per address, and slows attempts at a
	// username that failed often; auth.DefaultLoginThrottle when nil.
	LoginThrottle *auth.LoginThrottle
	// JoinLimiter limits joins per user; a burst of 10, then one every 3 s
	// when nil.
	JoinLimiter *auth.Limiter
	// RegisterLimiter limits registrations per client address (each costs
	// a bcrypt hash); NewRegisterLimiter's when nil.
	RegisterLimiter *auth.Limiter
	// The limiters forget idle keys in the background only while their Run
	// runs: the caller makes them, starts `go l.Run(ctx)` for each, and
	// passes them in. Those made here when nil forget idle keys only as
	// they are used.
	// TrustedProxies (addresses or CIDRs) may set X-Forwarded-For,
	// X-Forwarded-Proto and X-Forwarded-Host; none by default.
	TrustedProxies []string
	// MaxBodyBytes caps request bodies; 64 KiB when zero.
	MaxBodyBytes int64
	// MaxHeaderBytes caps the request line and headers, answered with 431
	// in the envelope; 64 KiB when zero. It must stay below the
	// http.Server's MaxHeaderBytes, over which net/http answers 431 itself
	// in plain text.
	MaxHeaderBytes int
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Ready, when set, is asked by /readyz besides the database: an error
	// makes the API not ready (the cluster's cache has not synced yet).
	Ready func(context.Context) error
	// Handlers are mounted as GET routes beside the API's, by gin path
	// pattern (the signalling proxy at /rooms/:identity/ws); they get the
	// API's access log and metrics, and write their own replies.
	Handlers map[string]http.Handler
}

// API serves the REST routes.
type API struct {
	accounts    Accounts
	meetings    *meeting.Service
	tokens      *auth.Tokens
	hasher      auth.Hasher
	log         *slog.Logger
	throttle    *auth.LoginThrottle
	joinLimiter *auth.Limiter
	regLimiter  *auth.Limiter
	proxies     []netip.Prefix
	now         func() time.Time
	dummyHash   string
	readyCheck  func(context.Context) error
}

// New returns the HTTP handler of the whole API.
func New(cfg Config) (*gin.Engine, error) {
	if cfg.Accounts == nil || cfg.Meetings == nil || cfg.Tokens == nil || cfg.Log == nil || cfg.Registry == nil {
		return nil, errors.New("server: Accounts, Meetings, Tokens, Log and Registry are required")
	}
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = 64 << 10
	}
	if cfg.MaxHeaderBytes == 0 {
		cfg.MaxHeaderBytes = 64 << 10
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.LoginThrottle == nil {
		cfg.LoginThrottle = auth.NewLoginThrottle(auth.LoginThrottleConfig{}, cfg.Now)
	}
	if cfg.JoinLimiter == nil {
		cfg.JoinLimiter = NewJoinLimiter(cfg.Now)
	}
	if cfg.RegisterLimiter == nil {
		cfg.RegisterLimiter = NewRegisterLimiter(cfg.Now)
	}
	proxies, err := parseProxies(cfg.TrustedProxies)
	if err != nil {
		return nil, fmt.Errorf("trusted proxies: %w", err)
	}
	// Checking a password against this hash makes a login for an unknown
	// user cost what a wrong password costs, so timing reveals nothing.
	dummy, err := cfg.Hasher.Hash("not a password of anyone")
	if err != nil {
		return nil, err
	}
	a := &API{accounts: cfg.Accounts, meetings: cfg.Meetings, tokens: cfg.Tokens, hasher: cfg.Hasher, log: cfg.Log,
		throttle: cfg.LoginThrottle, joinLimiter: cfg.JoinLimiter, regLimiter: cfg.RegisterLimiter, proxies: proxies, now: cfg.Now, dummyHash: dummy,
		readyCheck: cfg.Ready}

	r := gin.New()
	r.HandleMethodNotAllowed = true
	if err := r.SetTrustedProxies(cfg.TrustedProxies); err != nil {
		return nil, fmt.Errorf("trusted proxies: %w", err)
	}
	m, err := newMetrics(cfg.Registry)
	if err != nil {
		return nil, err
	}
	r.Use(a.accessLog, m.middleware, a.recover, limitHeaders(cfg.MaxHeaderBytes), limitBody(cfg.MaxBodyBytes))
	r.NoRoute(func(c *gin.Context) { fail(c, http.StatusNotFound, "no such endpoint: "+c.Request.URL.Path) })
	r.NoMethod(func(c *gin.Context) {
		fail(c, http.StatusMethodNotAllowed, c.Request.Method+" is not allowed on "+c.Request.URL.Path)
	})

	r.GET("/ping", func(c *gin.Context) {
		c.JSON(http.StatusOK, gin.H{"code": http.StatusOK, "msg": "pong", "message": "pong"})
	})
	r.GET("/healthz", func(c *gin.Context) { ok(c, nil) })
	r.GET("/readyz", a.ready)
	r.GET("/metrics", gin.WrapH(promhttp.HandlerFor(cfg.Registry, promhttp.HandlerOpts{})))
	r.GET("/openapi.yaml", func(c *gin.Context) { c.Data(http.StatusOK, "application/yaml", docs.OpenAPI) })

	r.POST("/user/login", a.login)
	r.POST("/user/register", a.register)

	g := r.Group("/auth", a.authenticate)
	g.GET("/user/info", a.userInfo)
	g.PUT("/user/password", a.changePassword)
	g.GET("/meeting/list", a.listMeetings)
	g.GET("/meeting/get", a.getMeeting)
	g.POST("/meeting/create", a.createMeeting)
	g.PUT("/meeting/edit", a.editMeeting)
	g.DELETE("/meeting/delete", a.deleteMeeting)
	g.GET("/meeting/members", a.listMembers)
	g.POST("/meeting/members", a.addMembers)
	g.DELETE("/meeting/members", a.removeMember)
	g.POST("/meeting/join", a.join)

	for pattern, h := range cfg.Handlers {
		r.GET(pattern, gin.WrapH(h))
	}

	client, err := web.New()
	if err != nil {
		return nil, err
	}
	client.Register(r)
	return r, nil
}

// NewJoinLimiter is the join limiter by default: per user, a burst of 10,
// then one every 3 s. now is the clock (time.Now when nil).
func NewJoinLimiter(now func() time.Time) *auth.Limiter {
	return auth.NewLimiter(10, 3*time.Second, now)
}

// NewRegisterLimiter is the registration limiter by default: per client
// address, a burst of 10, then one a minute.
func NewRegisterLimiter(now func() time.Time) *auth.Limiter {
	return auth.NewLimiter(10, time.Minute, now)
}

func (a *API) ready(c *gin.Context) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), 2*time.Second)
	defer cancel()
	if err := a.accounts.Ping(ctx); err != nil {
		a.log.Warn("not ready", "err", err)
		fail(c, http.StatusServiceUnavailable, "database unavailable")
		return
	}
	if a.readyCheck != nil {
		if err := a.readyCheck(ctx); err != nil {
			a.log.Warn("not ready", "err", err)
			fail(c, http.StatusServiceUnavailable, "not ready: "+err.Error())
			return
		}
	}
	ok(c, nil)
}

// accessLog logs one line per request at info level: method, route (the
// pattern, not the path, so no query string or identity), status, latency,
// client address and, once authenticated, the user id. Never headers,
// tokens or bodies.
func (a *API) accessLog(c *gin.Context) {
	start := time.Now()
	c.Next()
	route := c.FullPath()
	if route == "" {
		route = "unmatched"
	}
	attrs := []slog.Attr{
		slog.String("method", c.Request.Method),
		slog.String("route", route),
		slog.Int("status", c.Writer.Status()),
		slog.Duration("latency", time.Since(start)),
		slog.String("client", c.ClientIP()),
	}
	if v, ok := c.Get(identityKey); ok {
		attrs = append(attrs, slog.Uint64("user_id", v.(auth.Identity).UserID))
	}
	a.log.LogAttrs(c.Request.Context(), slog.LevelInfo, "request", attrs...)
}

// recover answers a panic with 500 in the envelope and logs it.
func (a *API) recover(c *gin.Context) {
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			a.log.Error("panic in handler", "panic", p, "path", c.FullPath())
			if !c.Writer.Written() {
				fail(c, http.StatusInternalServerError, "internal error")
			}
			c.Abort()
		}
	}()
	c.Next()
}

// limitHeaders answers 431 in the envelope when the request line and
// headers together are larger than n bytes (counted as net/http counts them
// for its own limit, roughly: names, values and separators).
func limitHeaders(n int) gin.HandlerFunc {
	return func(c *gin.Context) {
		size := len(c.Request.Method) + len(c.Request.RequestURI) + len(c.Request.Proto) + len(c.Request.Host) + 4
		for k, vs := range c.Request.Header {
			for _, v := range vs {
				size += len(k) + len(v) + 4
			}
		}
		if size > n {
			fail(c, http.StatusRequestHeaderFieldsTooLarge, fmt.Sprintf("request headers are larger than %d bytes", n))
			return
		}
		c.Next()
	}
}

func limitBody(n int64) gin.HandlerFunc {
	return func(c *gin.Context) {
		if c.Request.Body != nil {
			c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, n)
		}
		c.Next()
	}
}
