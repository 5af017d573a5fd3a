package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"meeting.dev/meeting/internal/sockbuf"
	"meeting.dev/meeting/media/sfu"
	"meeting.dev/meeting/media/token"
)

const sfuUsage = `
Signalling: ws://<http-addr>/ws (docs/signaling.md); the join token comes in
the first message (or, discouraged, as ?token=). Requests without an Origin
header are refused unless --allow-no-origin. Health: /healthz, /readyz (503 while
draining); Prometheus: /metrics. All ICE traffic uses the one UDP port
--udp-port. On SIGTERM the SFU tells every participant it is closing and
waits up to --drain-timeout for them to leave.
`

// sfuFlags is the typed configuration of the sfu role.
type sfuFlags struct {
	httpAddr       string
	udpIP          string
	udpPort        int
	publicIPs      sfuList
	tokenKey       string
	room           string
	maxPart        int
	drain          time.Duration
	allowedOrigins sfuList
	allowNoOrigin  bool
	udpBuffer      int
	log            logFlags
}

func (f *sfuFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.httpAddr, "http-addr", ":7880", "host:port of signalling (/ws), /healthz, /readyz and /metrics")
	fs.StringVar(&f.udpIP, "udp-ip", "", "IP the ICE UDP port binds to (default all interfaces)")
	fs.IntVar(&f.udpPort, "udp-port", 7882, "the one UDP port of all ICE traffic")
	fs.Var(&f.publicIPs, "public-ip", "IP announced in ICE candidates instead of the bound one (repeatable or comma-separated)")
	fs.StringVar(&f.tokenKey, "token-key", "", "HMAC key of the room's join tokens, at least 32 bytes (required)")
	fs.StringVar(&f.room, "room", "", "serve only this room identity (default any room the token names)")
	fs.IntVar(&f.maxPart, "max-participants", sfu.DefaultMaxParticipants, "most participants per room")
	fs.DurationVar(&f.drain, "drain-timeout", sfu.DefaultDrainTimeout, "how long shutdown waits for participants to leave")
	fs.Var(&f.allowedOrigins, "allowed-origins", `Origin values accepted on /ws besides the same origin, "*" for any (repeatable or comma-separated)`)
	fs.IntVar(&f.udpBuffer, "udp-buffer", sockbuf.Default, "bytes of kernel receive and send buffer asked for the UDP port (capped by net.core.rmem_max/wmem_max; logged when it is)")
	fs.BoolVar(&f.allowNoOrigin, "allow-no-origin", false, "accept /ws requests without an Origin header (clients other than browsers that send none; meeting's own clients send one)")
	f.log.register(fs, "json")
}

// config returns the validated SFU configuration.
func (f *sfuFlags) config() (sfu.Config, error) {
	cfg := sfu.Config{
		Keys:            f.keys(),
		MaxParticipants: f.maxPart,
		DrainTimeout:    f.drain,
		AllowedOrigins:  f.allowedOrigins,
		AllowNoOrigin:   f.allowNoOrigin,
		PublicIPs:       f.publicIPs,
	}
	var errs []error
	switch {
	case f.tokenKey == "":
		errs = append(errs, errors.New("--token-key (or MEETING_TOKEN_KEY) is required"))
	case len(f.tokenKey) < token.MinKeySize:
		errs = append(errs, fmt.Errorf("--token-key (or MEETING_TOKEN_KEY) has %d bytes, at least %d are required (e.g. head -c 32 /dev/urandom | base64)", len(f.tokenKey), token.MinKeySize))
	}
	if f.maxPart <= 0 {
		errs = append(errs, fmt.Errorf("--max-participants %d: must be positive", f.maxPart))
	}
	if f.drain <= 0 {
		errs = append(errs, fmt.Errorf("--drain-timeout %s: must be positive", f.drain))
	}
	if f.udpPort < 0 || f.udpPort > 65535 {
		errs = append(errs, fmt.Errorf("--udp-port %d: not a port", f.udpPort))
	}
	if f.udpBuffer < 0 {
		errs = append(errs, fmt.Errorf("--udp-buffer %d: must not be negative", f.udpBuffer))
	}
	if f.udpIP != "" && net.ParseIP(f.udpIP) == nil {
		errs = append(errs, fmt.Errorf("--udp-ip %q: not an IP address", f.udpIP))
	}
	if err := errors.Join(errs...); err != nil {
		return cfg, err
	}
	return cfg, cfg.Validate()
}

// keys is the SFU's key lookup: the one --token-key for every room, or
// for the --room only.
func (f *sfuFlags) keys() func(room string) ([]byte, error) {
	key, only := []byte(f.tokenKey), f.room
	return func(room string) ([]byte, error) {
		if only != "" && room != only {
			return nil, fmt.Errorf("this SFU serves only room %q", only)
		}
		return key, nil
	}
}

// sfuList is a repeatable, comma-separated string flag.
type sfuList []string

func (l *sfuList) String() string { return strings.Join(*l, ",") }

func (l *sfuList) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

// runSFU runs the SFU until ctx ends, then drains it.
func runSFU(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var f sfuFlags
	fs := newFlagSet("meeting sfu", "Selective forwarding unit: WebRTC rooms of the meetings whose tokens it accepts.", stdout, sfuUsage)
	f.register(fs)
	log, err := parseRole(fs, args, &f.log, stderr)
	if err != nil {
		return err
	}
	cfg, err := f.config()
	if err != nil {
		return fmt.Errorf("sfu: %w", err)
	}
	cfg.Logger = log

	reg := newRegistry()
	cfg.Registerer = reg
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(f.udpIP), Port: f.udpPort})
	if err != nil {
		return fmt.Errorf("sfu: listen udp: %w", err)
	}
	defer udp.Close()
	sockbuf.SetAndLog(log, "sfu ice", f.udpBuffer, udp)
	s, err := sfu.New(cfg, udp)
	if err != nil {
		return fmt.Errorf("sfu: %w", err)
	}
	defer s.Close() // after Shutdown, a no-op; after an HTTP error, the end of every session

	mux := http.NewServeMux()
	mux.Handle("/ws", s.Handler())
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !s.Ready() {
			http.Error(w, "draining", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	log.Info("sfu starting", "udp", udp.LocalAddr().String(),
		"public_ips", strings.Join(f.publicIPs, ","), "room", f.room, "pid", os.Getpid())
	drain := func(ctx context.Context) {
		log.Info("sfu draining", "timeout", f.drain.String())
		s.Shutdown(ctx)
	}
	if err := serveHTTP(ctx, log, f.httpAddr, mux, f.drain+5*time.Second, drain); err != nil {
		return fmt.Errorf("sfu: %w", err)
	}
	log.Info("sfu stopped")
	return nil
}
