package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/pion/webrtc/v3"
)

// MeetingJoin is the data of the API's reply to POST /auth/meeting/join.
type MeetingJoin struct {
	Identity   string             `json:"identity"`
	Name       string             `json:"name"`
	BeginAt    int64              `json:"begin_at"`
	EndAt      int64              `json:"end_at"`
	Phase      string             `json:"phase"`
	SignalURL  string             `json:"signal_url"`
	Token      string             `json:"token"`
	ExpiresAt  int64              `json:"expires_at"`
	ICEServers []webrtc.ICEServer `json:"ice_servers"`
}

// APIError is an error reply of the REST API.
type APIError struct {
	Status  int
	Message string
	// RetryAfter is the Retry-After the API sent (429, 503), zero if none.
	RetryAfter time.Duration
}

func (e *APIError) Error() string { return fmt.Sprintf("api: %d %s", e.Status, e.Message) }

// API is a client of the REST API, enough to log in and join meetings.
type API struct {
	// URL is the API's base URL, such as http://127.0.0.1:8080.
	URL string
	// Token is the API token (from Login).
	Token string
	// HTTP is the HTTP client (default: one with a 10s timeout).
	HTTP *http.Client
}

// Login returns an API for apiURL logged in as user.
func Login(ctx context.Context, apiURL, user, password string) (*API, error) {
	a := &API{URL: strings.TrimRight(apiURL, "/")}
	var out struct {
		Token string `json:"token"`
	}
	if err := a.call(ctx, http.MethodPost, "/user/login", map[string]string{"username": user, "password": password}, &out); err != nil {
		return nil, fmt.Errorf("log in as %s: %w", user, err)
	}
	a.Token = out.Token
	return a, nil
}

// Join asks the API to join meeting identity and returns what it answered.
func (a *API) Join(ctx context.Context, identity string) (MeetingJoin, error) {
	var j MeetingJoin
	if err := a.call(ctx, http.MethodPost, "/auth/meeting/join", map[string]string{"identity": identity}, &j); err != nil {
		return MeetingJoin{}, fmt.Errorf("join meeting %s: %w", identity, err)
	}
	return j, nil
}

// JoinMeeting joins meeting identity through the API and then its room, as
// a browser does: the API's answer gives the signalling URL, the join token
// and the ICE servers (TURN with ephemeral credentials), which replace
// those of opts.
func (a *API) JoinMeeting(ctx context.Context, identity string, opts Options) (*Client, MeetingJoin, error) {
	j, err := a.Join(ctx, identity)
	if err != nil {
		return nil, j, err
	}
	opts.URL, opts.Token, opts.ICEServers = j.SignalURL, j.Token, j.ICEServers
	c, err := Join(ctx, opts)
	return c, j, err
}

// call sends body as JSON and decodes the reply's data into out.
func (a *API) call(ctx context.Context, method, path string, body, out any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, method, a.URL+path, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if a.Token != "" {
		req.Header.Set("Authorization", "Bearer "+a.Token)
	}
	hc := a.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("read reply: %w", err)
	}
	var env struct {
		Code int             `json:"code"`
		Msg  string          `json:"msg"`
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(raw, &env); err != nil {
		return fmt.Errorf("reply %d is not the API's envelope: %w", resp.StatusCode, err)
	}
	if resp.StatusCode != http.StatusOK {
		e := &APIError{Status: resp.StatusCode, Message: env.Msg}
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
			e.RetryAfter = time.Duration(s) * time.Second
		}
		return e
	}
	if out == nil || len(env.Data) == 0 {
		return nil
	}
	if err := json.Unmarshal(env.Data, out); err != nil {
		return fmt.Errorf("decode reply data: %w", err)
	}
	return nil
}

// IsStatus reports whether err is an API error with that HTTP status.
func IsStatus(err error, status int) bool {
	var e *APIError
	return errors.As(err, &e) && e.Status == status
}

// Connector joins meeting identity through the API for each participant of
// a load test, waiting out the API's join rate limit when it answers 429.
func (a *API) Connector(identity string) func(ctx context.Context, user string) (Options, error) {
	return func(ctx context.Context, _ string) (Options, error) {
		for {
			j, err := a.Join(ctx, identity)
			var e *APIError
			if errors.As(err, &e) && e.Status == http.StatusTooManyRequests && e.RetryAfter > 0 {
				select {
				case <-time.After(e.RetryAfter):
					continue
				case <-ctx.Done():
					return Options{}, fmt.Errorf("%w (last: %w)", ctx.Err(), err)
				}
			}
			if err != nil {
				return Options{}, err
			}
			return Options{URL: j.SignalURL, Token: j.Token, ICEServers: j.ICEServers}, nil
		}
	}
}
