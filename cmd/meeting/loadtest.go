package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"meeting.dev/meeting/media/client"
	"meeting.dev/meeting/media/token"
)

const loadtestUsage = `
Publishers join and publish synthetic Opus (50 packets/s) and/or VP8 (30
frames/s) tracks; subscribers join and publish nothing. Once every
participant receives every track, the tool measures for --duration and
prints received packets/s, loss (sequence gaps) and publish-to-receive
latency p50/p99. Participants join the SFU at --url with tokens minted with
--token-key for users pub-N and sub-N, or, with --api, each joins --meeting
through the REST API as --user (POST /auth/meeting/join), exactly as the web
client does: the API gives the signalling URL, the token and TURN servers.
With --json it prints JSON lines: {"event":"window_open"},
{"event":"window_closed"} and {"event":"result",...}.

It also reports its own side, to tell its limits from the server's: the
NACKs its receivers sent, the datagrams the kernel dropped for its own UDP
sockets (/proc/net/udp: it fell behind, not the server), the host's UDP
InErrors and RcvbufErrors (/proc/net/snmp, every process's) and its CPU
time in the window. With --procs N the subscribers run in N child
processes (this executable, re-run), publishers in this one; the windows
are lined up and the results merged.
`

// loadtestFlags is the typed configuration of the loadtest role.
type loadtestFlags struct {
	cfg      client.LoadConfig
	tokenKey string
	api      string
	user     string
	password string
	meeting  string
	json     bool
	procs    int
	child    bool
	log      logFlags
}

func (f *loadtestFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.cfg.URL, "url", "ws://127.0.0.1:7880/ws", "SFU signalling WebSocket URL")
	fs.StringVar(&f.tokenKey, "token-key", "", "the room's join token key (required)")
	fs.StringVar(&f.cfg.Room, "room", "loadtest", "room identity")
	fs.StringVar(&f.api, "api", "", "REST API base URL, such as http://127.0.0.1:8080: join --meeting through the API instead of minting tokens")
	fs.StringVar(&f.user, "user", "", "with --api: the user that logs in and joins")
	fs.StringVar(&f.password, "password", "", "with --api: the user's password (prefer MEETING_PASSWORD: flags show in ps)")
	fs.StringVar(&f.meeting, "meeting", "", "with --api: the meeting identity to join")
	fs.IntVar(&f.cfg.Publishers, "publishers", 2, "participants that publish")
	fs.IntVar(&f.cfg.Subscribers, "subscribers", 10, "participants that only receive")
	fs.BoolVar(&f.cfg.Audio, "audio", false, "publish an Opus track each")
	fs.BoolVar(&f.cfg.Video, "video", false, "publish a VP8 camera track each (default when neither is given)")
	fs.DurationVar(&f.cfg.Duration, "duration", 10*time.Second, "measurement window")
	fs.DurationVar(&f.cfg.Settle, "settle", time.Second, "pause between everyone receiving and the window")
	fs.DurationVar(&f.cfg.JoinTimeout, "setup-timeout", 2*time.Minute, "bound on joining, publishing and first packets")
	fs.IntVar(&f.cfg.Concurrency, "concurrency", 8, "participants joining at once")
	fs.BoolVar(&f.json, "json", false, "print JSON lines instead of text")
	fs.IntVar(&f.procs, "procs", 1, "processes the subscribers run in: above 1, that many child processes take equal shares and this one runs the publishers")
	fs.BoolVar(&f.child, "child", false, "internal (--procs): run as a child; print ready and wait for a line on stdin before the window")
	fs.IntVar(&f.cfg.ExternalPublishers, "external-publishers", 0, "internal (--procs): publishers in another process whose tracks to expect")
	fs.IntVar(&f.cfg.SubscriberOffset, "subscriber-offset", 0, "internal (--procs): number subscribers from this offset")
	f.log.register(fs, "text")
}

// runLoadtest runs one load test against an SFU and prints its figures.
func runLoadtest(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var f loadtestFlags
	fs := newFlagSet("meeting loadtest", "Load generator for the SFU: N publishers x M subscribers.", stdout, loadtestUsage)
	f.register(fs)
	log, err := parseRole(fs, args, &f.log, stderr)
	if err != nil {
		return err
	}
	cfg := f.cfg
	switch {
	case f.api != "":
		if f.user == "" || f.password == "" || f.meeting == "" {
			return errors.New("loadtest: --api needs --user, --password (or MEETING_PASSWORD) and --meeting")
		}
		api, err := client.Login(ctx, f.api, f.user, f.password)
		if err != nil {
			return fmt.Errorf("loadtest: %w", err)
		}
		cfg.Connect = api.Connector(f.meeting)
	case f.tokenKey == "":
		return errors.New("loadtest: --token-key (or MEETING_TOKEN_KEY) is required, or --api with --user, --password and --meeting")
	case len(f.tokenKey) < token.MinKeySize:
		return fmt.Errorf("loadtest: --token-key (or MEETING_TOKEN_KEY) has %d bytes, at least %d are required", len(f.tokenKey), token.MinKeySize)
	default:
		cfg.TokenKey = []byte(f.tokenKey)
	}
	if !cfg.Audio && !cfg.Video {
		cfg.Video = true
	}
	if f.procs < 1 {
		return fmt.Errorf("loadtest: --procs %d: at least 1", f.procs)
	}
	if f.password == "" {
		f.password = os.Getenv("MEETING_PASSWORD")
	}
	f.cfg.Audio, f.cfg.Video = cfg.Audio, cfg.Video
	cfg.Logger = log
	var mu sync.Mutex
	emit := func(v any) {
		mu.Lock()
		defer mu.Unlock()
		b, err := json.Marshal(v)
		if err == nil {
			fmt.Fprintln(stdout, string(b))
		}
	}
	cfg.OnWindow = func(open bool) {
		switch {
		case f.json && open:
			emit(map[string]string{"event": "window_open"})
		case f.json:
			emit(map[string]string{"event": "window_closed"})
		case open:
			log.Info("measuring", "duration", cfg.Duration.String())
		}
	}
	var children []*loadChild
	switch {
	case f.child:
		cfg.Histogram = true
		cfg.BeforeWindow = waitGo(os.Stdin, emit)
	case f.procs > 1:
		cfg.Subscribers = 0
		cfg.Histogram = true
		cfg.BeforeWindow = func(ctx context.Context) error {
			var err error
			if children, err = f.startChildren(ctx, log, stderr); err != nil {
				return err
			}
			log.Info("children started", "procs", f.procs)
			return waitReady(ctx, children)
		}
	}
	res, err := client.RunLoad(ctx, cfg)
	if err != nil {
		stopChildren(children)
		return err
	}
	if len(children) > 0 {
		rs, err := collect(ctx, children)
		if err != nil {
			stopChildren(children)
			return fmt.Errorf("loadtest: %w", err)
		}
		res = client.MergeLoadResults(append([]client.LoadResult{res}, rs...)...)
	}
	if !f.child {
		res.LatencyHist = nil
	}
	if f.json {
		emit(struct {
			Event string `json:"event"`
			client.LoadResult
		}{"result", res})
		return nil
	}
	fmt.Fprintf(stdout, "publishers %d, subscribers %d, tracks %d, window %s\n", res.Publishers, res.Subscribers, res.Tracks, res.Window.Round(time.Millisecond))
	fmt.Fprintf(stdout, "sent %d packets, received %d (%.0f packets/s), lost %d (%.4f%%)\n",
		res.Sent, res.Received, res.ReceivedPerSec, res.Lost, 100*res.LossRatio)
	fmt.Fprintf(stdout, "publish->receive latency p50 %s, p99 %s, max %s (%d samples)\n",
		res.LatencyP50.Round(time.Microsecond), res.LatencyP99.Round(time.Microsecond), res.LatencyMax.Round(time.Microsecond), res.LatencySamples)
	fmt.Fprintf(stdout, "load tool: CPU %s in the window (%.0f%% of a core, %d process(es)); NACKs sent %d (for %d packets); own sockets dropped %d datagrams; host UDP RcvbufErrors +%d, InErrors +%d\n",
		res.CPU.Round(time.Millisecond), 100*res.CPU.Seconds()/res.Window.Seconds(), res.Procs, res.NACKsSent, res.NACKedPackets,
		res.OwnSocketDrops, res.HostRcvbufErrors, res.HostInErrors)
	return nil
}
