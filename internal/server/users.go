package server

import (
	"errors"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"meeting.dev/meeting/internal/auth"
	"meeting.dev/meeting/internal/meeting"
)

const identityKey = "identity"

// authenticate accepts the seed's raw token in Authorization, or a Bearer
// token, of an account that still exists and of its current token
// generation (a password change revokes older tokens).
func (a *API) authenticate(c *gin.Context) {
	h := bearerToken(c.GetHeader("Authorization"))
	if h == "" {
		fail(c, http.StatusUnauthorized, "missing token: send it in the Authorization header")
		return
	}
	id, err := a.tokens.Parse(h)
	if err != nil {
		fail(c, http.StatusUnauthorized, "invalid or expired token: log in again")
		return
	}
	acc, err := a.accounts.UserByID(c.Request.Context(), id.UserID)
	if errors.Is(err, meeting.ErrNotFound) {
		fail(c, http.StatusUnauthorized, "invalid or expired token: log in again")
		return
	}
	if err != nil {
		a.failErr(c, err)
		return
	}
	if auth.CheckGeneration(id, acc.TokenGeneration) != nil {
		fail(c, http.StatusUnauthorized, "token revoked: log in again")
		return
	}
	id.Username = acc.Username
	c.Set(identityKey, id)
	c.Next()
}

// bearerToken takes the token from an Authorization header: raw, as the
// seed sent it, or after "Bearer".
func bearerToken(header string) string {
	f := strings.Fields(header)
	switch {
	case len(f) == 1 && strings.EqualFold(f[0], "bearer"):
		return ""
	case len(f) == 1:
		return f[0]
	case len(f) == 2 && strings.EqualFold(f[0], "bearer"):
		return f[1]
	default:
		return header // malformed: let the token check refuse it
	}
}

func caller(c *gin.Context) auth.Identity {
	return c.MustGet(identityKey).(auth.Identity)
}

type tokenReply struct {
	Token     string `json:"token"`
	ExpiresAt int64  `json:"expires_at"`
}

func (a *API) login(c *gin.Context) {
	in, err := parseCredentials(c.Request.Body, false)
	if err != nil {
		a.failErr(c, err)
		return
	}
	addr := c.ClientIP()
	if !a.throttled(c, addr, in.Username, "too many login attempts; try again later") {
		return
	}
	const denied = "invalid username or password"
	u, err := a.accounts.UserByName(c.Request.Context(), in.Username)
	if errors.Is(err, meeting.ErrNotFound) {
		_, _ = a.hasher.Verify(a.dummyHash, in.Password)
		a.throttle.Failure(addr, in.Username)
		fail(c, http.StatusUnauthorized, denied)
		return
	}
	if err != nil {
		a.failErr(c, err)
		return
	}
	rehash, err := a.hasher.Verify(u.PasswordHash, in.Password)
	if errors.Is(err, auth.ErrBadPassword) {
		a.throttle.Failure(addr, in.Username)
		fail(c, http.StatusUnauthorized, denied)
		return
	}
	if err != nil {
		a.failErr(c, err)
		return
	}
	a.throttle.Success(addr, in.Username)
	if rehash {
		if err := a.rehashPassword(c, u.ID, in.Password); err != nil {
			a.failErr(c, err)
			return
		}
	}
	a.issue(c, auth.Identity{UserID: u.ID, Username: u.Username, Generation: u.TokenGeneration})
}

// throttled asks the login throttle whether an attempt with a password of
// user from addr may go on, and waits as long as it says. When it may not,
// or the request ends while waiting, it answers (429 with Retry-After) and
// returns false.
func (a *API) throttled(c *gin.Context, addr, user, refused string) bool {
	wait, allowed := a.throttle.Check(addr, user)
	if !allowed {
		retryAfter(c, wait)
		fail(c, http.StatusTooManyRequests, refused)
		return false
	}
	if wait <= 0 {
		return true
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-c.Request.Context().Done():
		fail(c, http.StatusServiceUnavailable, "request cancelled")
		return false
	}
}

// retryAfter sets Retry-After to wait in whole seconds, rounded up.
func retryAfter(c *gin.Context, wait time.Duration) {
	c.Header("Retry-After", strconv.FormatInt(max(int64(math.Ceil(wait.Seconds())), 1), 10))
}

// rehashPassword stores a bcrypt hash of password in place of a seed md5
// hash after a login; it does not revoke tokens.
func (a *API) rehashPassword(c *gin.Context, id uint64, password string) error {
	h, err := a.hasher.Hash(password)
	if err != nil {
		return err
	}
	if err := a.accounts.SetPassword(c.Request.Context(), id, h); err != nil {
		return err
	}
	a.log.Info("password hash stored", "user_id", id)
	return nil
}

func (a *API) issue(c *gin.Context, id auth.Identity) {
	tok, exp, err := a.tokens.Issue(id)
	if err != nil {
		a.failErr(c, err)
		return
	}
	ok(c, tokenReply{Token: tok, ExpiresAt: exp.UnixMilli()})
}

type userReply struct {
	ID        uint64 `json:"id"`
	Username  string `json:"username"`
	CreatedAt int64  `json:"created_at"`
}

func userOut(u meeting.User) userReply {
	return userReply{ID: u.ID, Username: u.Username, CreatedAt: millis(u.CreatedAt)}
}

func millis(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func (a *API) register(c *gin.Context) {
	in, err := parseCredentials(c.Request.Body, true)
	if err != nil {
		a.failErr(c, err)
		return
	}
	// Each registration costs a bcrypt hash, and a 409 tells whether a
	// name is taken: both are limited per address.
	if wait, allowed := a.regLimiter.Take("register:" + c.ClientIP()); !allowed {
		retryAfter(c, wait)
		fail(c, http.StatusTooManyRequests, "too many registrations from this address; try again later")
		return
	}
	h, err := a.hasher.Hash(in.Password)
	if err != nil {
		a.failErr(c, err)
		return
	}
	u, err := a.accounts.CreateUser(c.Request.Context(), in.Username, h)
	if errors.Is(err, meeting.ErrConflict) {
		fail(c, http.StatusConflict, "username "+in.Username+" is taken")
		return
	}
	if err != nil {
		a.failErr(c, err)
		return
	}
	ok(c, userOut(u.User()))
}

func (a *API) userInfo(c *gin.Context) {
	u, err := a.accounts.UserByID(c.Request.Context(), caller(c).UserID)
	if err != nil {
		a.failErr(c, err)
		return
	}
	ok(c, userOut(u.User()))
}

func (a *API) changePassword(c *gin.Context) {
	in, err := parsePasswordChange(c.Request.Body)
	if err != nil {
		a.failErr(c, err)
		return
	}
	id := caller(c)
	addr := c.ClientIP()
	if !a.throttled(c, addr, id.Username, "too many attempts; try again later") {
		return
	}
	u, err := a.accounts.UserByID(c.Request.Context(), id.UserID)
	if err != nil {
		a.failErr(c, err)
		return
	}
	if _, err := a.hasher.Verify(u.PasswordHash, in.OldPassword); err != nil {
		if errors.Is(err, auth.ErrBadPassword) {
			a.throttle.Failure(addr, id.Username)
			fail(c, http.StatusForbidden, "old_password is wrong")
			return
		}
		a.failErr(c, err)
		return
	}
	a.throttle.Success(addr, id.Username)
	h, err := a.hasher.Hash(in.NewPassword)
	if err != nil {
		a.failErr(c, err)
		return
	}
	gen, err := a.accounts.ChangePassword(c.Request.Context(), u.ID, h)
	if err != nil {
		a.failErr(c, err)
		return
	}
	a.log.Info("password changed; older tokens revoked", "user_id", u.ID, "token_generation", gen)
	// The caller's own token is revoked with the others: answer a new one.
	a.issue(c, auth.Identity{UserID: u.ID, Username: u.Username, Generation: gen})
}

// queryInt reads an optional positive whole-number query parameter.
func queryInt(c *gin.Context, name string, def, max int) (int, error) {
	s, present := c.GetQuery(name)
	if !present || s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return 0, badRequest(name + " must be a whole number of at least 1")
	}
	if n > max {
		n = max
	}
	return n, nil
}
