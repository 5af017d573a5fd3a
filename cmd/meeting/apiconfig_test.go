package main

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"meeting.dev/meeting/internal/meeting"
)

// --lead-time and --end-grace are parsed (flags or environment) and
// validated with the rest of the API's configuration.
func TestAPIConfigSchedulePolicy(t *testing.T) {
	for _, c := range []struct {
		args  []string
		lead  time.Duration
		grace time.Duration
		err   string
	}{
		{nil, time.Minute, time.Minute, ""},
		{[]string{"--lead-time", "5m", "--end-grace", "0s"}, 5 * time.Minute, 0, ""},
		{[]string{"--lead-time", "-1s"}, 0, 0, "--lead-time -1s"},
		{[]string{"--end-grace", "25h"}, 0, 0, "--end-grace 25h0m0s"},
		{[]string{"--lead-time", "soon"}, 0, 0, "invalid value"},
	} {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			cfg := apiConfig{standalone: true}
			fs := newFlagSet("meeting", "", io.Discard, "")
			cfg.register(fs)
			err := parseFlags(fs, append([]string{"--data-dir", t.TempDir()}, c.args...))
			if err == nil {
				err = cfg.validate()
			}
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("got %v, want an error with %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p := cfg.policy(); p.LeadTime != c.lead || p.Grace != c.grace {
				t.Errorf("policy %+v, want lead %s grace %s", p, c.lead, c.grace)
			}
		})
	}
}

// Until in-process rooms are wired, no meeting's media is ever ready.
func TestNoRooms(t *testing.T) {
	var r meeting.Rooms = noRooms{}
	if _, err := r.Room(context.Background(), "x"); !errors.Is(err, meeting.ErrMediaNotReady) {
		t.Errorf("Room: %v, want ErrMediaNotReady", err)
	}
	if st := r.Status(context.Background(), "x"); st.Ready || st.Online != 0 {
		t.Errorf("Status: %+v", st)
	}
}
