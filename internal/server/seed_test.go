package server

import (
	"context"
	"strings"
	"testing"

	"meeting.dev/meeting/internal/store"
	"meeting.dev/meeting/internal/store/storetest"
)

// A database made with the seed's DDL and rows upgrades in place, and the
// seed's root user (md5 password "1233456") logs in; the md5 hash is then
// replaced by bcrypt.
func TestSeedUserLogsIn(t *testing.T) {
	url := storetest.NewDatabaseURL(t)
	storetest.Exec(t, url, storetest.SeedStatements()...)
	st, err := store.Open(context.Background(), url, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	h := newHarness(t, st, nil)

	h.expect(h.do("POST", "/user/login", "", credentials{"root", "123456"}), 401, "invalid username or password")
	r := h.do("POST", "/user/login", "", credentials{"root", "1233456"})
	h.expect(r, 200, "")
	var tok tokenReply
	h.decode(r, &tok)

	root, err := st.UserByName(context.Background(), "root")
	if err != nil || !strings.HasPrefix(root.PasswordHash, "$2a$") {
		t.Fatalf("seed password not re-hashed with bcrypt: %q, %v", root.PasswordHash, err)
	}
	h.expect(h.do("POST", "/user/login", "", credentials{"root", "1233456"}), 200, "")
	h.expect(h.do("POST", "/user/login", "", credentials{"root", "e10adc3949ba59abbe56e057f20f883e"}), 401, "")

	// The seed's meeting is listed with millisecond times, the seed's raw
	// Authorization header accepted.
	var l listReply
	h.decode(h.do("GET", "/auth/meeting/list?page=1&size=10&keyword=standup", tok.Token, nil), &l)
	if l.Count != 1 || l.List[0].Identity != "5f0c3c5e-6f55-4a39-9b34-0d6f0a1d2b11" || l.List[0].BeginAt != 1893574800000 {
		t.Fatalf("seed meeting listed as %+v", l)
	}
}
