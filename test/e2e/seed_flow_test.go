package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"meeting.dev/meeting/internal/store/storetest"
)

// api is a REST client that sends the token raw, as the seed's clients did.
type api struct {
	t     testing.TB
	base  string
	token string
}

type envelope struct {
	Code int             `json:"code"`
	Msg  string          `json:"msg"`
	Data json.RawMessage `json:"data"`
}

func (a *api) call(method, path string, body any, want int, out any) envelope {
	a.t.Helper()
	var r io.Reader
	if body != nil {
		js, _ := json.Marshal(body)
		r = bytes.NewReader(js)
	}
	req, err := http.NewRequest(method, a.base+path, r)
	if err != nil {
		a.t.Fatal(err)
	}
	if a.token != "" {
		req.Header.Set("Authorization", a.token)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var env envelope
	if err := json.Unmarshal(raw, &env); err != nil {
		a.t.Fatalf("%s %s: reply is not JSON: %s", method, path, raw)
	}
	if resp.StatusCode != want || env.Code != want {
		a.t.Fatalf("%s %s: HTTP %d code %d (%s), want %d", method, path, resp.StatusCode, env.Code, env.Msg, want)
	}
	if out != nil {
		if err := json.Unmarshal(env.Data, out); err != nil {
			a.t.Fatalf("%s %s: data %s: %v", method, path, env.Data, err)
		}
	}
	return env
}

type meeting struct {
	Identity string `json:"identity"`
	Name     string `json:"name"`
	BeginAt  int64  `json:"begin_at"`
	EndAt    int64  `json:"end_at"`
}

type list struct {
	List  []meeting `json:"list"`
	Count int64     `json:"count"`
}

// The seed README's flow against the built binary (standalone on SQLite and
// on MariaDB, and the api role on MariaDB): login → list → create → edit →
// list → delete, then a clean exit on SIGTERM.
func TestSeedFlow(t *testing.T) {
	for _, mode := range []string{"standalone-sqlite", "standalone-mysql", "api-role-mysql"} {
		t.Run(mode, func(t *testing.T) {
			env := []string{"MEETING_HTTP_ADDR=127.0.0.1:0", "MEETING_ADMIN_PASSWORD=first-admin-pw", "MEETING_LOG_FORMAT=json"}
			var args []string
			switch mode {
			case "standalone-sqlite":
				env = append(env, "MEETING_DATA_DIR="+t.TempDir())
			case "standalone-mysql":
				env = append(env, "MEETING_DATA_DIR="+t.TempDir(), "MEETING_DATABASE_URL="+storetest.NewDatabaseURL(t))
			case "api-role-mysql":
				args = []string{"api"}
				env = append(env, "MEETING_DATABASE_URL="+storetest.NewDatabaseURL(t), "MEETING_JWT_SECRET="+strings.Repeat("j", 32))
			}
			p := start(t, env, args...)
			a := &api{t: t, base: p.logLine(t, "listening")["addr"].(string)}

			var pong map[string]any
			resp, err := http.Get(a.base + "/ping")
			if err != nil {
				t.Fatal(err)
			}
			_ = json.NewDecoder(resp.Body).Decode(&pong)
			resp.Body.Close()
			if pong["message"] != "pong" {
				t.Fatalf("/ping = %v", pong)
			}

			var tok struct{ Token string }
			a.call("POST", "/user/login", map[string]string{"username": "root", "password": "first-admin-pw"}, 200, &tok)
			a.token = tok.Token

			var l list
			a.call("GET", "/auth/meeting/list?page=1&size=10&keyword=", nil, 200, &l)
			if l.Count != 0 {
				t.Fatalf("fresh list has %d meetings", l.Count)
			}
			begin := time.Now().Add(24 * time.Hour).Truncate(time.Millisecond)
			var m meeting
			a.call("POST", "/auth/meeting/create", map[string]any{"name": "weekly sync", "begin_at": begin.UnixMilli(),
				"end_at": begin.Add(time.Hour).UnixMilli()}, 200, &m)
			a.call("PUT", "/auth/meeting/edit", map[string]any{"identity": m.Identity, "name": "weekly sync (moved)"}, 200, nil)
			a.call("GET", "/auth/meeting/list?page=1&size=10&keyword=sync", nil, 200, &l)
			if l.Count != 1 || l.List[0].Name != "weekly sync (moved)" || l.List[0].BeginAt != begin.UnixMilli() ||
				l.List[0].EndAt != begin.Add(time.Hour).UnixMilli() {
				t.Fatalf("after edit: %+v", l)
			}
			a.call("DELETE", "/auth/meeting/delete?identity="+m.Identity, nil, 200, nil)
			a.call("GET", "/auth/meeting/list", nil, 200, &l)
			if l.Count != 0 {
				t.Fatalf("after delete: %+v", l)
			}
			a.call("GET", "/auth/meeting/get?identity="+m.Identity, nil, 404, nil)
			p.stop(t)
		})
	}
}

// Without an admin password the first start generates one, prints it once,
// and keeps a JWT secret readable by the owner only; a restart keeps both.
func TestFirstStartGeneratesSecrets(t *testing.T) {
	dataDir := t.TempDir()
	env := []string{"MEETING_HTTP_ADDR=127.0.0.1:0", "MEETING_DATA_DIR=" + dataDir, "MEETING_LOG_FORMAT=json"}
	p := start(t, env)
	a := &api{t: t, base: p.logLine(t, "listening")["addr"].(string)}
	match := regexp.MustCompile(`account root with password (\S+) `).FindStringSubmatch(p.stdout.String())
	if match == nil {
		t.Fatalf("no generated password on stdout: %q", p.stdout.String())
	}
	password := match[1]
	var tok struct{ Token string }
	a.call("POST", "/user/login", map[string]string{"username": "root", "password": password}, 200, &tok)
	if strings.Contains(p.stderr.String(), password) {
		t.Error("the generated password was logged")
	}
	info, err := os.Stat(filepath.Join(dataDir, "jwt-secret"))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("jwt-secret: %v, mode %v; want 0600", err, info.Mode())
	}
	p.stop(t)

	p = start(t, env)
	a.base = p.logLine(t, "listening")["addr"].(string)
	if strings.Contains(p.stdout.String(), "password") {
		t.Errorf("second start printed a password again: %q", p.stdout.String())
	}
	a.token = tok.Token // the secret survived the restart, so the token still holds
	a.call("GET", "/auth/user/info", nil, 200, nil)
	p.stop(t)
}

// Bad configuration stops the process with a message, before serving.
func TestBadConfigurationIsRefused(t *testing.T) {
	for _, c := range []struct {
		env  []string
		args []string
		want string
	}{
		{[]string{"MEETING_JWT_SECRET=short"}, nil, "--jwt-secret has 5 bytes"},
		{nil, []string{"--database-url", "postgres://x"}, "want mysql://"},
		{nil, []string{"--token-ttl", "1s"}, "--token-ttl 1s"},
		{nil, []string{"api"}, "the api role needs mysql://"},
		{nil, []string{"--no-such-flag"}, "flag provided but not defined"},
		{nil, []string{"nonsense"}, `unknown role "nonsense"`},
	} {
		t.Run(fmt.Sprint(c.args, c.env), func(t *testing.T) {
			env := append([]string{"MEETING_DATA_DIR=" + t.TempDir(), "MEETING_HTTP_ADDR=127.0.0.1:0"}, c.env...)
			p := start(t, env, c.args...)
			<-p.done
			if p.err == nil || !strings.Contains(p.stderr.String(), c.want) {
				t.Fatalf("exit %v, stderr %q; want failure with %q", p.err, p.stderr.String(), c.want)
			}
		})
	}
}

// --help and `meeting help` document every flag with its environment
// variable, on standard output, and exit 0.
func TestHelpDocumentsFlags(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"help"}} {
		p := start(t, nil, args...)
		<-p.done
		if p.err != nil {
			t.Fatalf("%v exited with %v", args, p.err)
		}
		help := p.stdout.String()
		for _, want := range []string{"--http-addr", "MEETING_HTTP_ADDR", "MEETING_DATA_DIR", "MEETING_DATABASE_URL",
			"MEETING_JWT_SECRET", "MEETING_JWT_SECRET_FILE", "MEETING_ADMIN_PASSWORD", "operator", "sfu", "turn", "admin"} {
			if !strings.Contains(help, want) {
				t.Errorf("%v lacks %s on stdout:\n%s", args, want, help)
			}
		}
	}
	p := start(t, nil, "help", "admin")
	<-p.done
	if p.err != nil || !strings.Contains(p.stdout.String(), "reset-password USER") {
		t.Errorf("meeting help admin: %v\n%s", p.err, p.stdout.String())
	}
}
