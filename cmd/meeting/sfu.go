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

	"meeting.dev/meeting/media/sfu"
)

const sfuUsage = `
Signalling: ws://<http-addr>/ws (docs/signaling.md); the join token comes as
?token= or in the first message. Health: /healthz, /readyz (503 while
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
	log            logFlags
}

func (f *sfuFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.httpAddr, "http-addr", ":7880", "host:port of signalling (/ws), /healthz, /readyz and /metrics")
	fs.StringVar(&f.udpIP, "udp-ip", "", "IP the ICE UDP port binds to (default all interfaces)")
	fs.IntVar(&f.udpPort, "udp-port", 7882, "the one UDP port of all ICE traffic")
	fs.Var(&f.publicIPs, "public-ip", "IP announced in ICE candidates instead of the bound one (repeatable or comma-separated)")
	fs.StringVar(&f.tokenKey, "token-key", "", "HMAC key of the room's join tokens (required)")
	fs.StringVar(&f.room, "room", "", "serve only this room identity (default any room the token names)")
	fs.IntVar(&f.maxPart, "max-participants", sfu.DefaultMaxParticipants, "most participants per room")
	fs.DurationVar(&f.drain, "drain-timeout", sfu.DefaultDrainTimeout, "how long shutdown waits for participants to leave")
	fs.Var(&f.allowedOrigins, "allowed-origins", `Origin values accepted on /ws, "*" for any (default same origin; repeatable or comma-separated)`)
	f.log.register(fs, "json")
}

// config returns the validated SFU configuration.
func (f *sfuFlags) config() (sfu.Config, error) {
	cfg := sfu.Config{
		TokenKey:        []byte(f.tokenKey),
		Room:            f.room,
		MaxParticipants: f.maxPart,
		DrainTimeout:    f.drain,
		AllowedOrigins:  f.allowedOrigins,
		PublicIPs:       f.publicIPs,
	}
	var errs []error
	if f.tokenKey == "" {
		errs = append(errs, errors.New("--token-key (or MEETING_TOKEN_KEY) is required"))
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
	if f.udpIP != "" && net.ParseIP(f.udpIP) == nil {
		errs = append(errs, fmt.Errorf("--udp-ip %q: not an IP address", f.udpIP))
	}
	if err := errors.Join(errs...); err != nil {
		return cfg, err
	}
	return cfg, cfg.Validate()
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
	fs := newFlagSet("meeting sfu", "Selective forwarding unit: WebRTC rooms of the meetings whose tokens it accepts.", stderr, sfuUsage)
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

	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(f.udpIP), Port: f.udpPort})
	if err != nil {
		return fmt.Errorf("sfu: listen udp: %w", err)
	}
	defer udp.Close()
	httpLn, err := net.Listen("tcp", f.httpAddr)
	if err != nil {
		return fmt.Errorf("sfu: listen http: %w", err)
	}
	s, err := sfu.New(cfg, udp)
	if err != nil {
		_ = httpLn.Close()
		return fmt.Errorf("sfu: %w", err)
	}
	httpSrv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 5 * time.Second}
	httpDone := make(chan error, 1)
	go func() { httpDone <- httpSrv.Serve(httpLn) }()
	log.Info("sfu ready", "http", httpLn.Addr().String(), "udp", udp.LocalAddr().String(),
		"public_ips", strings.Join(f.publicIPs, ","), "room", f.room, "pid", os.Getpid())

	select {
	case <-ctx.Done():
	case err = <-httpDone:
		err = fmt.Errorf("sfu: http server: %w", err)
	}
	log.Info("sfu draining", "timeout", f.drain.String())
	drainCtx, cancel := context.WithTimeout(context.Background(), f.drain+5*time.Second)
	defer cancel()
	s.Shutdown(drainCtx)
	errs := []error{err}
	if herr := httpSrv.Shutdown(drainCtx); herr != nil && !errors.Is(herr, http.ErrServerClosed) {
		errs = append(errs, fmt.Errorf("sfu: http shutdown: %w", herr))
	}
	log.Info("sfu stopped")
	return errors.Join(errs...)
}
