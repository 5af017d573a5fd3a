// Command meeting is the one binary of the Meeting platform. Without a role it
// runs standalone (API, web client and media in one process on SQLite); a role
// argument selects one part for a cluster deployment.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
)

// role is one part of the platform that the binary can run.
type role struct {
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

// roles lists every role by the name given on the command line.
func roles() map[string]role {
	return map[string]role{
		"admin":    {"account maintenance: reset-password USER", runAdmin},
		"api":      {"REST API against MySQL", runAPI},
		"operator": {"Kubernetes operator that schedules media for Meetings", runOperator},
		"sfu":      {"selective forwarding unit of one or more rooms", runSFU},
		"turn":     {"TURN relay with ephemeral (use-auth-secret) credentials", runTURN},
		"loadtest": {"load generator for the SFU", runLoadtest},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "meeting:", err)
		os.Exit(1)
	}
}

// run dispatches to the role named by the first argument, or to standalone.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if isVersionArg(args) {
		return printVersion(stdout)
	}
	if len(args) > 0 && args[0] == "help" {
		// meeting help [ROLE]: the role's --help, on standard output.
		switch {
		case len(args) == 1 || (len(args) == 2 && args[1] == "standalone"):
			return runStandalone(ctx, []string{"--help"}, stdout, stderr)
		case len(args) == 2:
			r, ok := roles()[args[1]]
			if !ok {
				return fmt.Errorf("no help on %q: not a role (roles: %s)", args[1], strings.Join(roleNames(), ", "))
			}
			return r.run(ctx, []string{"--help"}, stdout, stderr)
		default:
			return errors.New("usage: meeting help [ROLE]")
		}
	}
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		r, ok := roles()[args[0]]
		if !ok {
			return fmt.Errorf("unknown role %q (roles: %s)", args[0], strings.Join(roleNames(), ", "))
		}
		return r.run(ctx, args[1:], stdout, stderr)
	}
	return runStandalone(ctx, args, stdout, stderr)
}

func roleNames() []string {
	var names []string
	for n := range roles() {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// rolesUsage is appended to the standalone help text.
func rolesUsage() string {
	var b strings.Builder
	b.WriteString("\nRoles (meeting help ROLE, or meeting ROLE --help, for each):\n")
	rs := roles()
	for _, n := range roleNames() {
		fmt.Fprintf(&b, "  %-9s %s\n", n, rs[n].summary)
	}
	return b.String()
}
