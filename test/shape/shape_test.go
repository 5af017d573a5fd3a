// Package shape_test checks issue 9's "one meeting, one shape" with both
// real parts: at each edge of a meeting's shape, REST (internal/server on
// the real store on MariaDB, over HTTP) and the Kubernetes API server
// (envtest, with the Meeting CRD of config/crd/bases) accept or refuse
// alike; a meeting REST accepts, as REST answers it, is a Meeting the API
// server accepts; and a Meeting the API server accepts can be created
// through REST with the same identity, title, participants and limit.
package shape_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/bcrypt"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rtcv1alpha1 "meeting.dev/meeting/api/v1alpha1"
	"meeting.dev/meeting/internal/auth"
	"meeting.dev/meeting/internal/meeting"
	"meeting.dev/meeting/internal/server"
	"meeting.dev/meeting/internal/store/storetest"
	"meeting.dev/meeting/internal/testenv"
)

// edge is a meeting at one edge of the shape, in the terms both sides
// share, and whether each side takes it.
type edge struct {
	name         string
	identity     string // "" leaves it out: REST makes a UUID, the resource uses its UID
	title        string
	creator      string
	participants []string
	max          int // 0 leaves it out (the default, 50); use -1 for an explicit 0
	rest, crd    bool
}

func TestOneShape(t *testing.T) {
	ctx := t.Context()
	env, err := testenv.Start(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Error(err)
		}
	})
	kube, err := client.New(env.Config, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	api := newAPI(t)

	u100, p100 := strings.Repeat("u", 100), strings.Repeat("p", 100)
	for _, n := range []string{"alice", "bob", "carol", "dave", u100, p100} {
		api.register(n)
	}
	edges := []edge{
		{name: "identity of 64", identity: strings.Repeat("i", 63) + "4", rest: true, crd: true},
		{name: "identity of 65", identity: strings.Repeat("i", 64) + "5"},
		{name: "identity of _ . - and digits", identity: "0team_a.room-1", rest: true, crd: true},
		// REST lower-cases what it is given (UUIDs of old clients in any case
		// keep working) and stores "room-a", which the API server takes.
		{name: "identity in capitals", identity: "Room-A", rest: true},
		{name: "identity starting with _", identity: "_room"},
		{name: "identity with a slash", identity: "team/room"},
		{name: "title of 200", title: strings.Repeat("名", 200), rest: true, crd: true},
		{name: "title of 201", title: strings.Repeat("名", 201)},
		{name: "creator of 100", creator: u100, rest: true, crd: true},
		{name: "participant of 100", participants: []string{p100}, rest: true, crd: true},
		{name: "participant of 101", participants: []string{p100 + "p"}},
		{name: "participant with a space", participants: []string{"bo b"}},
		{name: "maxParticipants 1", max: 1, rest: true, crd: true},
		{name: "maxParticipants 1000", max: 1000, rest: true, crd: true},
		{name: "maxParticipants 1001", max: 1001},
		{name: "maxParticipants 0", max: -1},
		{name: "participants = maxParticipants", max: 2, participants: []string{"bob", "carol"}, rest: true, crd: true},
		{name: "participants = maxParticipants + 1", max: 2, participants: []string{"bob", "carol", "dave"}},
		{name: "participants within the default 50", participants: []string{"bob", "carol", "dave"}, rest: true, crd: true},
	}
	begin := time.Now().UTC().Add(24 * time.Hour).Truncate(time.Second)
	end := begin.Add(time.Hour)

	// The creator is REST's caller, one of its users (3 to 100 of a-z 0-9 . _
	// -): only the API server can be given another. It takes any username of
	// at most 100 characters of REST's alphabet in either case; a short or
	// unknown one is an unknown user to the API (the sync reports it).
	for _, c := range []struct {
		creator string
		ok      bool
	}{{u100, true}, {u100 + "u", false}, {"Al", true}, {"a b", false}, {"-alice", false}, {"alice@example.org", false}} {
		err := kube.Create(ctx, meetingObject("c-"+fmt.Sprint(len(c.creator)), "", "creator", c.creator, nil, 0, begin, end))
		if err != nil && !apierrors.IsInvalid(err) {
			t.Fatalf("API server: %v", err)
		}
		if (err == nil) != c.ok {
			t.Errorf("API server takes creator %q: %v, want %v (%v)", c.creator, err == nil, c.ok, err)
		}
		if err == nil {
			_ = kube.Delete(ctx, meetingObject("c-"+fmt.Sprint(len(c.creator)), "", "", "", nil, 0, begin, end))
		}
	}

	for i, e := range edges {
		if e.title == "" {
			e.title = e.name
		}
		if e.creator == "" {
			e.creator = "alice"
		}
		t.Run(e.name, func(t *testing.T) {
			// The API server, given the edge as it is.
			err := kube.Create(ctx, meetingObject(fmt.Sprintf("e-%d", i), e.identity, e.title, e.creator, e.participants, e.max, begin, end))
			if err != nil && !apierrors.IsInvalid(err) {
				t.Fatalf("API server: %v", err)
			}
			if crd := err == nil; crd != e.crd {
				t.Errorf("API server accepts: %v, want %v (%v)", crd, e.crd, err)
			}

			// REST, given the same.
			body := map[string]any{"name": e.title, "begin_at": begin.UnixMilli(), "end_at": end.UnixMilli()}
			if e.identity != "" {
				body["identity"] = e.identity
			}
			if e.max != 0 {
				body["max_participants"] = max(e.max, 0)
			}
			if e.participants != nil {
				body["participants"] = e.participants
			}
			r := api.do("POST", "/auth/meeting/create", e.creator, body)
			if rest := r.Code == http.StatusOK; rest != e.rest {
				t.Fatalf("REST accepts: %v, want %v (%d %s)", rest, e.rest, r.Code, r.Msg)
			}
			if r.Code != http.StatusOK && r.Code != http.StatusBadRequest {
				t.Fatalf("REST refused with %d %s, want 400", r.Code, r.Msg)
			}
			if !e.rest {
				return
			}

			// What REST stored, as it answers it, is a valid Meeting.
			var created struct{ Identity string }
			mustDecode(t, r.Data, &created)
			got := api.get(e.creator, created.Identity)
			if err := kube.Create(ctx, meetingObject(fmt.Sprintf("r-%d", i), got.Identity, got.Name, got.Participants[0].Username,
				got.others(), got.MaxParticipants, begin, end)); err != nil {
				t.Errorf("the meeting REST stored is refused by the API server: %v", err)
			}

			// A Meeting the API server took is the meeting REST holds.
			if e.crd {
				wantMax := e.max
				if wantMax == 0 {
					wantMax = meeting.DefaultMaxParticipants
				}
				if got.Identity != e.identity && e.identity != "" || got.Name != e.title || got.Participants[0].Username != e.creator ||
					!slices.Equal(sorted(got.others()), sorted(e.participants)) || got.MaxParticipants != wantMax {
					t.Errorf("REST holds %+v, want the Meeting's identity %q, title, creator %q, participants %v, max %d",
						got, e.identity, e.creator, e.participants, wantMax)
				}
			}
		})
	}
}

// meetingObject is a Meeting as unstructured JSON, so that what is sent is
// exactly what the edge says (a typed object would drop a 0 maxParticipants).
func meetingObject(name, identity, title, creator string, participants []string, maxParticipants int, begin, end time.Time) *unstructured.Unstructured {
	spec := map[string]any{"title": title, "creator": creator,
		"beginAt": begin.Format(time.RFC3339), "endAt": end.Format(time.RFC3339)}
	if identity != "" {
		spec["identity"] = identity
	}
	if participants != nil {
		list := make([]any, len(participants))
		for i, p := range participants {
			list[i] = p
		}
		spec["participants"] = list
	}
	if maxParticipants != 0 {
		spec["maxParticipants"] = int64(max(maxParticipants, 0))
	}
	u := &unstructured.Unstructured{Object: map[string]any{"spec": spec}}
	u.SetAPIVersion(rtcv1alpha1.GroupVersion.String())
	u.SetKind("Meeting")
	u.SetNamespace("default")
	u.SetName(name)
	return u
}

// restAPI is internal/server on the real store on MariaDB, over HTTP.
type restAPI struct {
	t      *testing.T
	url    string
	tokens map[string]string
}

// rooms is media that is never up: the shape needs none.
type rooms struct{}

func (rooms) Schedule(context.Context, meeting.Meeting) error { return nil }
func (rooms) Remove(context.Context, string, string) error    { return nil }
func (rooms) Room(context.Context, string) (meeting.Room, error) {
	return meeting.Room{}, meeting.ErrMediaNotReady
}
func (rooms) Status(context.Context, string) meeting.RoomStatus { return meeting.RoomStatus{} }

func newAPI(t *testing.T) *restAPI {
	st := storetest.Open(t, "mysql")
	log := slog.New(slog.DiscardHandler)
	svc, err := meeting.New(meeting.Config{Store: st, Rooms: rooms{}, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := auth.NewTokens([]byte(strings.Repeat("k", 32)), time.Hour, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	engine, err := server.New(server.Config{Accounts: st, Meetings: svc, Tokens: tokens, Hasher: auth.Hasher{Cost: bcrypt.MinCost},
		Log: log, Registry: prometheus.NewRegistry(), RegisterLimiter: auth.NewLimiter(1000, time.Millisecond, time.Now)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(engine)
	t.Cleanup(srv.Close)
	return &restAPI{t: t, url: srv.URL, tokens: map[string]string{}}
}

type reply struct {
	Code int             `json:"code"`
	Msg  string          `json:"msg"`
	Data json.RawMessage `json:"data"`
}

func (a *restAPI) do(method, path, user string, body any) reply {
	a.t.Helper()
	js, err := json.Marshal(body)
	if err != nil {
		a.t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(a.t.Context(), method, a.url+path, bytes.NewReader(js))
	if err != nil {
		a.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if user != "" {
		req.Header.Set("Authorization", "Bearer "+a.tokens[user])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		a.t.Fatal(err)
	}
	var r reply
	if err := json.Unmarshal(raw, &r); err != nil || r.Code != resp.StatusCode {
		a.t.Fatalf("%s %s: %d %s (%v)", method, path, resp.StatusCode, raw, err)
	}
	return r
}

// register makes the user and logs it in.
func (a *restAPI) register(name string) {
	a.t.Helper()
	creds := map[string]string{"username": name, "password": "password-of-a-user"}
	if r := a.do("POST", "/user/register", "", creds); r.Code != http.StatusOK {
		a.t.Fatalf("register %s: %d %s", name, r.Code, r.Msg)
	}
	r := a.do("POST", "/user/login", "", creds)
	var tok struct{ Token string }
	mustDecode(a.t, r.Data, &tok)
	a.tokens[name] = tok.Token
}

// detail is the reply of GET /auth/meeting/get.
type detail struct {
	Identity        string `json:"identity"`
	Name            string `json:"name"`
	MaxParticipants int    `json:"max_participants"`
	Participants    []struct {
		Username string `json:"username"`
	} `json:"participants"`
}

// others are the participants besides the creator (who comes first).
func (d detail) others() []string {
	var out []string
	for _, p := range d.Participants[1:] {
		out = append(out, p.Username)
	}
	return out
}

func (a *restAPI) get(user, identity string) detail {
	a.t.Helper()
	r := a.do("GET", "/auth/meeting/get?identity="+identity, user, nil)
	if r.Code != http.StatusOK {
		a.t.Fatalf("get %s: %d %s", identity, r.Code, r.Msg)
	}
	var d detail
	mustDecode(a.t, r.Data, &d)
	return d
}

func mustDecode(t *testing.T, data json.RawMessage, v any) {
	t.Helper()
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("decode %s: %v", data, err)
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}
