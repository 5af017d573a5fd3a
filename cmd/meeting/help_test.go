package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"strings"
	"testing"
)

// Help goes to standard output and is not an error (main exits 0 on
// flag.ErrHelp); meeting help [ROLE] is the same as --help.
func TestHelp(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--help"}, "Usage: meeting [flags]"},
		{[]string{"-h"}, "MEETING_JWT_SECRET_FILE"},
		{[]string{"help"}, "Roles (meeting help ROLE"},
		{[]string{"help", "sfu"}, "Usage: meeting sfu [flags]"},
		{[]string{"help", "operator"}, "--metrics-addr"},
		{[]string{"help", "admin"}, "reset-password USER"},
		{[]string{"api", "--help"}, "MEETING_DATABASE_URL_FILE"},
		{[]string{"turn", "-help"}, "Usage: meeting turn [flags]"},
	} {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			var out, errs bytes.Buffer
			err := run(context.Background(), c.args, &out, &errs)
			if !errors.Is(err, flag.ErrHelp) {
				t.Fatalf("err = %v, want flag.ErrHelp (exit 0)", err)
			}
			if !strings.Contains(out.String(), c.want) || errs.Len() != 0 {
				t.Errorf("stdout lacks %q or stderr is not empty:\nstdout %s\nstderr %s", c.want, out.String(), errs.String())
			}
		})
	}
	var out, errs bytes.Buffer
	if err := run(context.Background(), []string{"help", "nonsense"}, &out, &errs); err == nil || !strings.Contains(err.Error(), "not a role") {
		t.Errorf("help nonsense: %v", err)
	}
	// A flag error is returned (main prints it on stderr), without the help.
	err := run(context.Background(), []string{"--no-such-flag"}, &out, &errs)
	if err == nil || errors.Is(err, flag.ErrHelp) || !strings.Contains(err.Error(), "no-such-flag") || out.Len() != 0 {
		t.Errorf("bad flag: %v, stdout %q", err, out.String())
	}
}
