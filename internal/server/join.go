package server

import (
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"meeting.dev/meeting/internal/meeting"
)

// joinReply is what a client needs to join a meeting's room.
type joinReply struct {
	Identity   string      `json:"identity"`
	Name       string      `json:"name"`
	BeginAt    int64       `json:"begin_at"`
	EndAt      int64       `json:"end_at"`
	Phase      string      `json:"phase"`
	SignalURL  string      `json:"signal_url"`
	Token      string      `json:"token"`
	ExpiresAt  int64       `json:"expires_at"`
	ICEServers []iceServer `json:"ice_servers"`
}

// iceServer has the shape of the browser's RTCIceServer.
type iceServer struct {
	URLs       []string `json:"urls"`
	Username   string   `json:"username"`
	Credential string   `json:"credential"`
}

func (a *API) join(c *gin.Context) {
	id, err := parseJoin(c.Request.Body)
	if err != nil {
		a.failErr(c, err)
		return
	}
	who := me(c)
	if !a.joinLimiter.Allow("join:" + strconv.FormatUint(who.ID, 10)) {
		a.failErr(c, &meeting.Error{Kind: meeting.ErrRateLimited, Msg: "too many join attempts; try again in a few seconds"})
		return
	}
	adm, err := a.meetings.Join(c.Request.Context(), who, id, a.requestURL(c))
	if err != nil {
		a.failErr(c, err)
		return
	}
	m := adm.Meeting
	out := joinReply{Identity: m.Identity, Name: m.Name, BeginAt: millis(m.BeginAt), EndAt: millis(m.EndAt),
		Phase: string(adm.Phase), SignalURL: adm.SignalURL, Token: adm.Token, ExpiresAt: millis(adm.ExpiresAt),
		ICEServers: make([]iceServer, len(adm.ICEServers))}
	for i, s := range adm.ICEServers {
		out.ICEServers[i] = iceServer{URLs: s.URLs, Username: s.Username, Credential: s.Credential}
	}
	ok(c, out)
}

// requestURL is the scheme and host the client reached the API by: those
// of the request, or the X-Forwarded-Proto and X-Forwarded-Host a trusted
// proxy sets. Anyone else's forwarded headers are ignored.
func (a *API) requestURL(c *gin.Context) *url.URL { return requestURL(a.proxies, c.Request) }

// RequestURLFunc returns the function that tells the scheme and host a
// client reached the API by, believing X-Forwarded-Proto and
// X-Forwarded-Host from the trusted proxies only (as the API does for the
// join's signal_url): for handlers mounted beside the API, such as the
// signalling proxy's Origin check.
func RequestURLFunc(trustedProxies []string) (func(*http.Request) *url.URL, error) {
	proxies, err := parseProxies(trustedProxies)
	if err != nil {
		return nil, fmt.Errorf("trusted proxies: %w", err)
	}
	return func(r *http.Request) *url.URL { return requestURL(proxies, r) }, nil
}

func requestURL(proxies []netip.Prefix, r *http.Request) *url.URL {
	u := &url.URL{Scheme: "http", Host: r.Host}
	if r.TLS != nil {
		u.Scheme = "https"
	}
	if !fromTrustedProxy(proxies, r.RemoteAddr) {
		return u
	}
	if p := strings.ToLower(firstValue(r.Header.Get("X-Forwarded-Proto"))); p == "http" || p == "https" {
		u.Scheme = p
	}
	if h := firstValue(r.Header.Get("X-Forwarded-Host")); validHost(h) {
		u.Host = h
	}
	return u
}

func fromTrustedProxy(proxies []netip.Prefix, remoteAddr string) bool {
	if len(proxies) == 0 {
		return false
	}
	ap, err := netip.ParseAddrPort(remoteAddr)
	if err != nil {
		return false
	}
	ip := ap.Addr().Unmap()
	for _, p := range proxies {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// parseProxies reads trusted proxies as gin does: addresses or CIDRs.
func parseProxies(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if strings.Contains(s, "/") {
			p, err := netip.ParsePrefix(s)
			if err != nil {
				return nil, fmt.Errorf("%q: %w", s, err)
			}
			out = append(out, p.Masked())
			continue
		}
		ip, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", s, err)
		}
		ip = ip.Unmap()
		out = append(out, netip.PrefixFrom(ip, ip.BitLen()))
	}
	return out, nil
}

// firstValue is the first of a comma-separated header's values (the one
// the proxy nearest the client set).
func firstValue(h string) string {
	v, _, _ := strings.Cut(h, ",")
	return strings.TrimSpace(v)
}

// validHost accepts a host or host:port and nothing else.
func validHost(h string) bool {
	if h == "" || strings.ContainsAny(h, "/@?# \t\\") {
		return false
	}
	u, err := url.Parse("//" + h)
	return err == nil && u.Host == h
}
