package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"

	"meeting.dev/meeting/internal/auth"
	"meeting.dev/meeting/internal/store"
	"meeting.dev/meeting/internal/store/storetest"
)

// `meeting admin reset-password USER` sets the password read from stdin,
// bumps the token generation, and prints nothing secret; on SQLite and
// MySQL.
func TestAdminResetPassword(t *testing.T) {
	ctx := context.Background()
	for _, d := range storetest.Dialects {
		t.Run(d, func(t *testing.T) {
			dir := t.TempDir()
			url := ""
			args := []string{"--data-dir", dir}
			if d == "mysql" {
				url = storetest.NewDatabaseURL(t)
				args = []string{"--database-url", url}
			}
			st, err := store.Open(ctx, url, dir, nil)
			if err != nil {
				t.Fatal(err)
			}
			hasher := auth.Hasher{}
			h, _ := hasher.Hash("old-password")
			alice, err := st.CreateUser(ctx, "alice", h)
			if err != nil {
				t.Fatal(err)
			}
			st.Close()

			var out, errs bytes.Buffer
			err = adminCommand(ctx, append(args, "reset-password", "ALICE"), strings.NewReader("n3w-password\n"), &out, &errs)
			if err != nil {
				t.Fatalf("reset-password: %v (stderr %s)", err, errs.String())
			}
			if strings.Contains(out.String()+errs.String(), "n3w-password") || !strings.Contains(out.String(), "alice") {
				t.Errorf("output: %q %q", out.String(), errs.String())
			}
			st, err = store.Open(ctx, url, dir, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			got, err := st.UserByID(ctx, alice.ID)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := hasher.Verify(got.PasswordHash, "n3w-password"); err != nil || got.TokenGeneration != 1 {
				t.Errorf("after reset: verify %v, generation %d", err, got.TokenGeneration)
			}
			for _, c := range []struct {
				args  []string
				stdin string
				err   string
			}{
				{[]string{"reset-password", "nobody"}, "n3w-password\n", `no user named "nobody"`},
				{[]string{"reset-password", "alice"}, "short\n", "8 to 72 bytes"},
				{[]string{"reset-password"}, "", "exactly one user"},
				{[]string{"rename", "alice"}, "", `unknown command "rename"`},
			} {
				err := adminCommand(ctx, append(args, c.args...), strings.NewReader(c.stdin), io.Discard, io.Discard)
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Errorf("%v: got %v, want %q", c.args, err, c.err)
				}
			}
		})
	}
	err := adminCommand(ctx, []string{"--data-dir", t.TempDir(), "reset-password", "root"}, strings.NewReader("n3w-password\n"), io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "no database in") {
		t.Errorf("empty data directory: %v", err)
	}
}

// An admin password given once root exists is ignored with a warning.
func TestEnsureAdminWarnsWhenRootExists(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, "", t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	hasher := auth.Hasher{Cost: 4}
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	if err := ensureAdmin(ctx, st, hasher, "first-password", io.Discard, log); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(logs.String(), "ignored") {
		t.Fatalf("warned at creation: %s", logs.String())
	}
	if err := ensureAdmin(ctx, st, hasher, "second-password", io.Discard, log); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "ignored") || strings.Contains(logs.String(), "second-password") {
		t.Errorf("logs: %s", logs.String())
	}
}
