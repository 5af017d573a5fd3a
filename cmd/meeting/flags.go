package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/peterbourgon/ff/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// envPrefix prefixes the environment variable that matches each flag:
// --http-addr is also MEETING_HTTP_ADDR.
const envPrefix = "MEETING"

// envName is the environment variable that sets the flag called name.
func envName(name string) string {
	return envPrefix + "_" + strings.ToUpper(strings.NewReplacer("-", "_", ".", "_").Replace(name))
}

// newFlagSet returns a flag set whose help text names each flag's
// environment variable. extra is printed after the flags. The help text goes
// to out (standard output) when asked for with -h or --help; a flag error
// is only returned, for main to print on standard error.
func newFlagSet(name, summary string, out io.Writer, extra string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {
		fmt.Fprintf(out, "Usage: %s [flags]\n\n%s\n\nFlags (each also read from the environment variable shown):\n", name, summary)
		fs.VisitAll(func(f *flag.Flag) {
			typ, usage := flag.UnquoteUsage(f)
			fmt.Fprintf(out, "  --%s %s\t[%s]\n    \t%s", f.Name, typ, envName(f.Name), usage)
			if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" && f.DefValue != "[]" {
				fmt.Fprintf(out, " (default %q)", f.DefValue)
			}
			fmt.Fprintln(out)
		})
		fmt.Fprint(out, extra)
	}
	return fs
}

// parseFlags reads args, then the environment for flags not given as args.
func parseFlags(fs *flag.FlagSet, args []string) error {
	usage := fs.Usage
	fs.Usage = func() {} // the flag package calls it on errors too
	err := ff.Parse(fs, args, ff.WithEnvVarPrefix(envPrefix))
	fs.Usage = usage
	if errors.Is(err, flag.ErrHelp) {
		usage()
	}
	return err
}

// parseRole reads a role's flags (args, then the environment), refuses
// stray arguments and returns the logger the flags ask for.
func parseRole(fs *flag.FlagSet, args []string, lf *logFlags, stderr io.Writer) (*slog.Logger, error) {
	if err := parseFlags(fs, args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	return lf.logger(stderr)
}

// newRegistry returns a Prometheus registry with the Go runtime and
// process collectors, for a role's /metrics.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// logFlags configures the structured logger every role uses.
type logFlags struct {
	format string
	level  slog.Level
}

func (l *logFlags) register(fs *flag.FlagSet, defaultFormat string) {
	l.format = defaultFormat
	fs.StringVar(&l.format, "log-format", defaultFormat, "log format: text or json")
	fs.TextVar(&l.level, "log-level", slog.LevelInfo, "minimum log level: debug, info, warn or error")
}

func (l *logFlags) logger(w io.Writer) (*slog.Logger, error) {
	opts := &slog.HandlerOptions{Level: l.level}
	switch l.format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	default:
		return nil, fmt.Errorf("--log-format %q: want text or json", l.format)
	}
}

// appendList returns a flag function that appends the comma-separated items
// of each value to dst (the flag may also be repeated).
func appendList(dst *[]string) func(string) error {
	return func(v string) error {
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				*dst = append(*dst, p)
			}
		}
		return nil
	}
}
