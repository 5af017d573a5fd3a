package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"meeting.dev/meeting/internal/auth"
	"meeting.dev/meeting/internal/local"
	"meeting.dev/meeting/internal/meeting"
	"meeting.dev/meeting/internal/schedule"
	"meeting.dev/meeting/internal/server"
	"meeting.dev/meeting/internal/store"
)

// apiConfig configures the REST API, standalone or as the api role.
type apiConfig struct {
	standalone    bool
	httpAddr      string
	dataDir       string
	databaseURL   string
	jwtSecret     string
	adminPassword string
	// The *File fields name files that hold a secret instead: a flag's
	// value shows in ps, a file's does not.
	databaseURLFile   string
	jwtSecretFile     string
	adminPasswordFile string
	tokenTTL          time.Duration
	trustedProxies    string
	shutdownGrace     time.Duration
	// leadTime and endGrace are the schedule policy: media comes up
	// leadTime before a meeting begins and stays endGrace after it ends
	// (the operator's flags of the same names).
	leadTime time.Duration
	endGrace time.Duration
	// media is standalone's in-process SFU and TURN.
	media mediaConfig
	// sync is the api role's sync with a cluster.
	sync syncConfig
	log  logFlags
}

func (c *apiConfig) register(fs *flag.FlagSet) {
	fs.StringVar(&c.httpAddr, "http-addr", "127.0.0.1:8080", "address the HTTP API listens on")
	if c.standalone {
		fs.StringVar(&c.dataDir, "data-dir", defaultDataDir(), "directory for the SQLite database and the generated JWT secret")
	}
	fs.StringVar(&c.databaseURL, "database-url", "", "mysql://user:pass@host:port/db selects MySQL; empty means SQLite in the data directory (standalone only)")
	fs.StringVar(&c.jwtSecret, "jwt-secret", "", "secret (at least 32 bytes) that signs API tokens; standalone generates one in the data directory when empty")
	fs.StringVar(&c.adminPassword, "admin-password", "", "password of the initial root account, used only when root does not exist yet; a random one is generated and printed once when empty")
	fs.StringVar(&c.databaseURLFile, "database-url-file", "", "file holding the database URL (instead of --database-url, whose value shows in ps)")
	fs.StringVar(&c.jwtSecretFile, "jwt-secret-file", "", "file holding the JWT secret (instead of --jwt-secret)")
	fs.StringVar(&c.adminPasswordFile, "admin-password-file", "", "file holding root's initial password (instead of --admin-password)")
	fs.DurationVar(&c.tokenTTL, "token-ttl", 12*time.Hour, "lifetime of API tokens")
	fs.StringVar(&c.trustedProxies, "trusted-proxies", "", "comma-separated proxy addresses or CIDRs whose X-Forwarded-For, X-Forwarded-Proto and X-Forwarded-Host are believed")
	fs.DurationVar(&c.shutdownGrace, "shutdown-grace", 10*time.Second, "how long in-flight requests may take after SIGTERM")
	fs.DurationVar(&c.leadTime, "lead-time", time.Minute, "a meeting's media comes up and joins are admitted this long before beginAt (the operator's --lead-time)")
	fs.DurationVar(&c.endGrace, "end-grace", time.Minute, "a meeting's media stays up and rejoins are admitted this long after endAt (the operator's --end-grace)")
	if c.standalone {
		c.media.register(fs)
	} else {
		if c.sync.namespaceFile == "" { // not set up by defaultSyncConfig
			c.sync = defaultSyncConfig()
		}
		c.sync.register(fs)
	}
	c.log.register(fs, "text")
}

// readSecretFiles sets each secret given as a file (--jwt-secret-file or
// MEETING_JWT_SECRET_FILE, and so on) from the file's content, without its
// final line break. Giving a secret both ways is an error.
func (c *apiConfig) readSecretFiles() error {
	for _, s := range []struct {
		name  string
		file  *string
		value *string
	}{
		{"database-url", &c.databaseURLFile, &c.databaseURL},
		{"jwt-secret", &c.jwtSecretFile, &c.jwtSecret},
		{"admin-password", &c.adminPasswordFile, &c.adminPassword},
	} {
		if *s.file == "" {
			continue
		}
		if *s.value != "" {
			return fmt.Errorf("--%s and --%s-file are both set: give one", s.name, s.name)
		}
		v, err := readSecretFile(*s.file)
		if err != nil {
			return fmt.Errorf("--%s-file: %w", s.name, err)
		}
		if v == "" {
			return fmt.Errorf("--%s-file %s is empty", s.name, *s.file)
		}
		*s.value, *s.file = v, "" // read once
	}
	return nil
}

// readSecretFile reads a secret from path: its content without the final
// line break (the way a Kubernetes Secret or `echo` writes it).
func readSecretFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r"), nil
}

func (c *apiConfig) validate() error {
	if err := c.readSecretFiles(); err != nil {
		return err
	}
	var errs []error
	if _, _, err := net.SplitHostPort(c.httpAddr); err != nil {
		errs = append(errs, fmt.Errorf("--http-addr %q: %w", c.httpAddr, err))
	}
	if !c.standalone && !strings.HasPrefix(c.databaseURL, "mysql://") {
		errs = append(errs, errors.New("--database-url: the api role needs mysql://user:pass@host:port/db"))
	}
	if c.standalone && c.databaseURL == "" && c.dataDir == "" {
		errs = append(errs, errors.New("--data-dir: needed for SQLite"))
	}
	if c.jwtSecret == "" && !c.standalone {
		errs = append(errs, errors.New("--jwt-secret is required (no default secret)"))
	}
	if c.jwtSecret != "" && len(c.jwtSecret) < auth.MinSecretBytes {
		errs = append(errs, fmt.Errorf("--jwt-secret has %d bytes, need at least %d", len(c.jwtSecret), auth.MinSecretBytes))
	}
	if c.adminPassword != "" && (len(c.adminPassword) < 8 || len(c.adminPassword) > auth.MaxPasswordBytes) {
		errs = append(errs, fmt.Errorf("--admin-password must be 8 to %d bytes", auth.MaxPasswordBytes))
	}
	if c.tokenTTL < time.Minute || c.tokenTTL > 30*24*time.Hour {
		errs = append(errs, fmt.Errorf("--token-ttl %s: want between 1m and 720h", c.tokenTTL))
	}
	if c.shutdownGrace <= 0 {
		errs = append(errs, errors.New("--shutdown-grace must be positive"))
	}
	if c.leadTime < 0 || c.leadTime > maxScheduleMargin {
		errs = append(errs, fmt.Errorf("--lead-time %s: want between 0 and %s", c.leadTime, maxScheduleMargin))
	}
	if c.endGrace < 0 || c.endGrace > maxScheduleMargin {
		errs = append(errs, fmt.Errorf("--end-grace %s: want between 0 and %s", c.endGrace, maxScheduleMargin))
	}
	if c.standalone {
		errs = append(errs, c.media.validate())
	} else {
		errs = append(errs, c.sync.validate())
	}
	return errors.Join(errs...)
}

// publicDefaults makes the API listen on every interface when a public IP
// is given and --http-addr is not: one flag serves a LAN or a server.
func (c *apiConfig) publicDefaults(fs *flag.FlagSet) {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == "http-addr" })
	if c.media.publicIP != "" && !set {
		c.httpAddr = ":8080"
	}
}

// maxScheduleMargin bounds --lead-time and --end-grace.
const maxScheduleMargin = 24 * time.Hour

// policy is the schedule policy of the flags.
func (c *apiConfig) policy() schedule.Policy {
	return schedule.Policy{LeadTime: c.leadTime, Grace: c.endGrace}
}

func defaultDataDir() string {
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "meeting")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "share", "meeting")
	}
	return ".meeting"
}

func runStandalone(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg := apiConfig{standalone: true}
	fs := newFlagSet("meeting", "Runs the whole Meeting platform in one process on SQLite (or MySQL with --database-url).", stdout, rolesUsage()+"\nmeeting --version (or meeting version) prints the version and revision.\n")
	cfg.register(fs)
	log, err := parseRole(fs, args, &cfg.log, stderr)
	if err != nil {
		return err
	}
	cfg.publicDefaults(fs)
	return serveAPI(ctx, cfg, log, stdout)
}

func runAPI(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg := apiConfig{sync: defaultSyncConfig()}
	fs := newFlagSet("meeting api", "Runs the REST API against MySQL, in step with the Meeting resources of a cluster when it finds one.", stdout, "")
	cfg.register(fs)
	log, err := parseRole(fs, args, &cfg.log, stderr)
	if err != nil {
		return err
	}
	return serveAPI(ctx, cfg, log, stdout)
}

func serveAPI(ctx context.Context, cfg apiConfig, log *slog.Logger, stdout io.Writer) error {
	if err := cfg.validate(); err != nil {
		return err
	}
	secret, err := jwtSecret(cfg)
	if err != nil {
		return err
	}
	st, err := store.Open(ctx, cfg.databaseURL, cfg.dataDir, log)
	if err != nil {
		return err
	}
	defer st.Close()

	hasher := auth.Hasher{}
	if err := ensureAdmin(ctx, st, hasher, cfg.adminPassword, stdout, log); err != nil {
		return err
	}
	tokens, err := auth.NewTokens(secret, cfg.tokenTTL, nil)
	if err != nil {
		return err
	}
	reg := newRegistry()
	var proxies []string
	if cfg.trustedProxies != "" {
		proxies = strings.Split(cfg.trustedProxies, ",")
	}
	var rooms meeting.Rooms = noRooms{}
	var media *local.Rooms
	var cluster *clusterSync
	if !cfg.standalone {
		selfURL, err := server.RequestURLFunc(proxies)
		if err != nil {
			return err
		}
		if cluster, err = setupClusterSync(ctx, cfg.sync, st, cfg.policy(), selfURL, reg, log); err != nil {
			return err
		}
		if cluster != nil {
			rooms = cluster.rooms
		}
	}
	if cfg.standalone {
		if media, err = openMedia(cfg.media, cfg.policy(), cfg.shutdownGrace, reg, log); err != nil {
			return err
		}
		rooms = media
	}
	var stopOnce sync.Once
	stopMedia := func(ctx context.Context) {
		stopOnce.Do(func() {
			if media == nil {
				return
			}
			if err := media.Shutdown(ctx); err != nil {
				log.Warn("media did not shut down cleanly", "err", err)
			}
		})
	}
	defer func() { // when serving failed before draining
		sctx, cancel := context.WithTimeout(context.Background(), cfg.shutdownGrace)
		defer cancel()
		stopMedia(sctx)
	}()

	meetings, err := meeting.New(meeting.Config{Store: st, Rooms: rooms, Policy: cfg.policy(), Log: log})
	if err != nil {
		return err
	}
	if media != nil {
		n, err := meetings.ScheduleAll(ctx)
		if err != nil {
			return err
		}
		log.Info("meetings scheduled", "count", n, "rooms_open", media.Open())
	}
	gin.SetMode(gin.ReleaseMode)
	// The API's limiters forget idle keys in the background until ctx ends.
	throttle := auth.NewLoginThrottle(auth.LoginThrottleConfig{}, nil)
	joins := server.NewJoinLimiter(nil)
	registrations := server.NewRegisterLimiter(nil)
	go throttle.Run(ctx)
	go joins.Run(ctx)
	go registrations.Run(ctx)
	scfg := server.Config{Accounts: st, Meetings: meetings, Tokens: tokens, Hasher: hasher, Log: log,
		Registry: reg, TrustedProxies: proxies, LoginThrottle: throttle, JoinLimiter: joins, RegisterLimiter: registrations}
	if cluster != nil {
		scfg.Ready, scfg.Handlers = cluster.ready, cluster.handlers()
	}
	api, err := server.New(scfg)
	if err != nil {
		return err
	}
	if cluster != nil {
		return serveWithSync(ctx, cfg, log, api, cluster)
	}
	if media == nil {
		return serveHTTP(ctx, log, cfg.httpAddr, api, cfg.shutdownGrace, nil)
	}
	// Signalling shares the API's listener: same origin as the API and
	// the page it serves, no CORS, no mixed content.
	mux := http.NewServeMux()
	mux.Handle(local.SignalPath, media.Handler())
	mux.Handle("/", api)
	return serveHTTP(ctx, log, cfg.httpAddr, mux, cfg.shutdownGrace, stopMedia)
}

// jwtSecret returns the configured secret or, standalone, the one kept in
// the data directory, generating it on first start.
func jwtSecret(cfg apiConfig) ([]byte, error) {
	if cfg.jwtSecret != "" {
		return []byte(cfg.jwtSecret), nil
	}
	path := filepath.Join(cfg.dataDir, "jwt-secret")
	b, err := os.ReadFile(path)
	if err == nil {
		s := strings.TrimSpace(string(b))
		if len(s) < auth.MinSecretBytes {
			return nil, fmt.Errorf("%s holds %d bytes, need at least %d", path, len(s), auth.MinSecretBytes)
		}
		return []byte(s), nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read JWT secret: %w", err)
	}
	if err := os.MkdirAll(cfg.dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	s := randomHex(32)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("write JWT secret: %w", err)
	}
	if _, err := f.WriteString(s + "\n"); err != nil {
		f.Close()
		return nil, fmt.Errorf("write JWT secret: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("write JWT secret: %w", err)
	}
	return []byte(s), nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never returns an error
	return hex.EncodeToString(b)
}

// ensureAdmin creates the root account when it does not exist yet. A
// password that was not given is generated and printed once on stdout.
func ensureAdmin(ctx context.Context, st *store.Store, hasher auth.Hasher, password string, stdout io.Writer, log *slog.Logger) error {
	_, err := st.UserByName(ctx, "root")
	if err == nil {
		if password != "" {
			log.Warn("the root account exists already: --admin-password (MEETING_ADMIN_PASSWORD) is ignored; use `meeting admin reset-password root` to change its password")
		}
		return nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	generated := password == ""
	if generated {
		password = randomHex(12)
	}
	h, err := hasher.Hash(password)
	if err != nil {
		return err
	}
	if _, err := st.CreateUser(ctx, "root", h); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return nil // another replica created it first
		}
		return err
	}
	if generated {
		fmt.Fprintf(stdout, "Created the account root with password %s — it is shown only this once.\n", password)
	}
	log.Info("created the root account", "generated_password", generated)
	return nil
}

// noRooms is the api role's Rooms on MySQL alone (no cluster): no media at
// all, so joins answer 503 and no meeting shows Running.
type noRooms struct{}

func (noRooms) Schedule(context.Context, meeting.Meeting) error { return nil }
func (noRooms) Remove(context.Context, string, string) error    { return nil }
func (noRooms) Status(context.Context, string) meeting.RoomStatus {
	return meeting.RoomStatus{}
}

func (noRooms) Room(_ context.Context, identity string) (meeting.Room, error) {
	return meeting.Room{}, fmt.Errorf("meeting %s: the api role runs no media without a cluster to sync with: %w", identity, meeting.ErrMediaNotReady)
}
