package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"meeting.dev/meeting/media/signal"
	"meeting.dev/meeting/media/token"
)

// LoadConfig is a load test: Publishers participants each publish the
// chosen media to Subscribers participants who publish nothing.
type LoadConfig struct {
	// URL, TokenKey and Room: participants join the SFU at URL with tokens
	// minted with the room's key, unless Connect is set.
	URL      string
	TokenKey []byte
	Room     string
	// Connect, when set, gives each participant (named user) its join
	// options instead: the real join flow through the API (see API.Connector).
	Connect     func(ctx context.Context, user string) (Options, error)
	Publishers  int
	Subscribers int
	Audio       bool
	Video       bool
	// Duration is the measurement window, after everyone receives.
	Duration time.Duration
	// Settle is a pause between "everyone receives" and the window (default 1s).
	Settle time.Duration
	// JoinTimeout bounds the setup: joins, publishing, first packets (default 2m).
	JoinTimeout time.Duration
	// Concurrency is how many participants join at once (default 8).
	Concurrency int
	// Video and audio shapes (see MediaOptions).
	VideoOptions, AudioOptions MediaOptions
	// OnWindow, when set, is called as the window opens and as it closes.
	OnWindow func(open bool)
	Logger   *slog.Logger

	// Spreading a load test over processes (see MergeLoadResults):
	// ExternalPublishers publish from another process, and this one's
	// participants expect their tracks too; subscribers are named
	// sub-<SubscriberOffset+i>; BeforeWindow, when set, is called once
	// every track arrives, before the settle pause and the window, to line
	// the processes' windows up; Histogram keeps the latencies in the
	// result as a histogram, for merging.
	ExternalPublishers int
	SubscriberOffset   int
	BeforeWindow       func(ctx context.Context) error
	Histogram          bool
}

// LoadResult is what a load test measured in its window.
type LoadResult struct {
	Publishers  int           `json:"publishers"`
	Subscribers int           `json:"subscribers"`
	Tracks      int           `json:"tracks"`
	Window      time.Duration `json:"window_ns"`
	// Sent is packets published in the window; Received is packets
	// received by all participants, Lost the sequence gaps among them.
	Sent             uint64        `json:"sent"`
	Received         uint64        `json:"received"`
	Lost             uint64        `json:"lost"`
	LossRatio        float64       `json:"loss_ratio"`
	ReceivedPerSec   float64       `json:"received_per_sec"`
	LatencyP50       time.Duration `json:"latency_p50_ns"`
	LatencyP99       time.Duration `json:"latency_p99_ns"`
	LatencyMax       time.Duration `json:"latency_max_ns"`
	LatencySamples   int           `json:"latency_samples"`
	ExpectedPerTrack int           `json:"receivers_per_track"`

	// The load tool's own side, in the window: NACK packets its receivers
	// sent and the packets those asked for; datagrams the kernel dropped
	// for its own UDP sockets (full receive buffers: the tool fell behind,
	// not the server); the host's UDP InErrors and RcvbufErrors (every
	// process's, the server's included when it runs here); its CPU time;
	// how many processes it ran in.
	NACKsSent        uint64        `json:"nacks_sent"`
	NACKedPackets    uint64        `json:"nacked_packets"`
	OwnSocketDrops   uint64        `json:"own_socket_drops"`
	HostInErrors     uint64        `json:"host_udp_in_errors"`
	HostRcvbufErrors uint64        `json:"host_udp_rcvbuf_errors"`
	CPU              time.Duration `json:"cpu_ns"`
	CPUUser          time.Duration `json:"cpu_user_ns"`
	Procs            int           `json:"procs"`
	// LatencyHist counts latencies by microseconds, rounded down to two
	// significant digits (with LoadConfig.Histogram).
	LatencyHist map[int64]uint64 `json:"latency_hist_us,omitempty"`
}

func (c *LoadConfig) validate() error {
	var errs []error
	if c.Connect == nil {
		if c.URL == "" {
			errs = append(errs, errors.New("url is required"))
		}
		if len(c.TokenKey) == 0 {
			errs = append(errs, errors.New("token key is required"))
		} else if len(c.TokenKey) < token.MinKeySize {
			errs = append(errs, fmt.Errorf("token key has %d bytes, at least %d are required", len(c.TokenKey), token.MinKeySize))
		}
		if c.Room == "" {
			errs = append(errs, errors.New("room is required"))
		}
	}
	if c.Publishers < 0 || c.ExternalPublishers < 0 || c.Publishers+c.ExternalPublishers < 1 {
		errs = append(errs, errors.New("at least one publisher"))
	}
	if c.Subscribers < 0 {
		errs = append(errs, errors.New("subscribers is negative"))
	}
	if !c.Audio && !c.Video {
		errs = append(errs, errors.New("audio, video or both"))
	}
	if c.Duration <= 0 {
		errs = append(errs, errors.New("duration must be positive"))
	}
	return errors.Join(errs...)
}

// RunLoad runs a load test and returns its figures.
func RunLoad(ctx context.Context, cfg LoadConfig) (LoadResult, error) {
	if err := cfg.validate(); err != nil {
		return LoadResult{}, fmt.Errorf("loadtest: %w", err)
	}
	if cfg.Settle == 0 {
		cfg.Settle = time.Second
	}
	if cfg.JoinTimeout == 0 {
		cfg.JoinTimeout = 2 * time.Minute
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 8
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Connect == nil {
		cfg.Connect = func(_ context.Context, user string) (Options, error) {
			tok, err := token.Mint(cfg.TokenKey, token.Claims{Room: cfg.Room, User: user, Name: user}, time.Hour)
			return Options{URL: cfg.URL, Token: tok}, err
		}
	}
	log := cfg.Logger
	setup, cancel := context.WithTimeout(ctx, cfg.JoinTimeout)
	defer cancel()

	var sources []string
	if cfg.Audio {
		sources = append(sources, signal.SourceAudio)
	}
	if cfg.Video {
		sources = append(sources, signal.SourceCamera)
	}
	n := cfg.Publishers + cfg.Subscribers
	clients := make([]*Client, n)
	var pubs []*Publisher
	var mu sync.Mutex
	defer func() {
		var wg sync.WaitGroup
		for _, c := range clients {
			if c != nil {
				wg.Add(1)
				go func() {
					defer wg.Done()
					c.Close()
				}()
			}
		}
		wg.Wait()
	}()

	// Subscribers first, then publishers, so that media starts once.
	sem := make(chan struct{}, cfg.Concurrency)
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		if i == cfg.Subscribers {
			wg.Wait()
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			user := fmt.Sprintf("sub-%d", cfg.SubscriberOffset+i)
			publisher := i >= cfg.Subscribers
			if publisher {
				user = fmt.Sprintf("pub-%d", i-cfg.Subscribers)
			}
			opts, err := cfg.Connect(setup, user)
			if err != nil {
				errs[i] = fmt.Errorf("%s: %w", user, err)
				return
			}
			opts.Logger = log
			c, err := Join(setup, opts)
			if err != nil {
				errs[i] = fmt.Errorf("%s: %w", user, err)
				return
			}
			clients[i] = c
			if !publisher {
				return
			}
			for _, src := range sources {
				opts := cfg.VideoOptions
				if src == signal.SourceAudio {
					opts = cfg.AudioOptions
				}
				p, err := c.Publish(setup, src, opts)
				if err != nil {
					errs[i] = fmt.Errorf("%s publish %s: %w", user, src, err)
					return
				}
				mu.Lock()
				pubs = append(pubs, p)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return LoadResult{}, fmt.Errorf("loadtest: setup: %w", err)
	}
	log.Info("everyone joined", "participants", n)

	// Wait until every participant receives every track but its own.
	perPub := len(sources)
	err := Wait(setup, func() bool {
		for i, c := range clients {
			want := (cfg.Publishers + cfg.ExternalPublishers) * perPub
			if i >= cfg.Subscribers {
				want -= perPub
			}
			got := 0
			for _, st := range c.Tracks() {
				if st.Packets > 0 && (st.Info.Kind != "video" || st.Keyframes > 0) {
					got++
				}
			}
			if got < want {
				return false
			}
		}
		return true
	})
	if err != nil {
		return LoadResult{}, fmt.Errorf("loadtest: waiting for every track to arrive: %w", err)
	}
	log.Info("every track arrives")
	if cfg.BeforeWindow != nil {
		if err := cfg.BeforeWindow(ctx); err != nil {
			return LoadResult{}, fmt.Errorf("loadtest: %w", err)
		}
	}
	select {
	case <-time.After(cfg.Settle):
	case <-ctx.Done():
		return LoadResult{}, ctx.Err()
	}

	// The window.
	for _, c := range clients {
		c.ResetStats()
	}
	sent0 := make([]uint64, len(pubs))
	for i, p := range pubs {
		sent0[i] = p.Sent()
	}
	own0 := ownSnapshot(clients, log)
	if cfg.OnWindow != nil {
		cfg.OnWindow(true)
	}
	start := time.Now()
	select {
	case <-time.After(cfg.Duration):
	case <-ctx.Done():
		return LoadResult{}, ctx.Err()
	}
	window := time.Since(start)
	own1 := ownSnapshot(clients, log)
	if cfg.OnWindow != nil {
		cfg.OnWindow(false)
	}
	res := LoadResult{Publishers: cfg.Publishers, Subscribers: cfg.Subscribers, Tracks: len(pubs),
		Window: window, ExpectedPerTrack: n + cfg.ExternalPublishers - 1, Procs: 1}
	own1.sub(own0).into(&res)
	for i, p := range pubs {
		res.Sent += p.Sent() - sent0[i]
	}
	var lat []time.Duration
	for _, c := range clients {
		for _, st := range c.Tracks() {
			if st.Removed {
				continue
			}
			res.Received += st.Packets
			res.Lost += st.Lost
			lat = append(lat, st.Latencies...)
		}
	}
	if total := res.Received + res.Lost; total > 0 {
		res.LossRatio = float64(res.Lost) / float64(total)
	}
	res.ReceivedPerSec = float64(res.Received) / window.Seconds()
	if cfg.Histogram {
		res.LatencyHist = latencyHist(lat)
	}
	if len(lat) > 0 {
		slices.Sort(lat)
		res.LatencyP50 = lat[len(lat)/2]
		res.LatencyP99 = lat[min(len(lat)-1, len(lat)*99/100)]
		res.LatencyMax = lat[len(lat)-1]
		res.LatencySamples = len(lat)
	}
	return res, nil
}
