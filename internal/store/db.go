package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/glebarez/sqlite"
	mysqldriver "github.com/go-sql-driver/mysql"
	"gorm.io/driver/mysql"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"meeting.dev/meeting/internal/meeting"
)

// Store is the database of users and meetings.
type Store struct {
	db      *gorm.DB
	dialect string
	outbox  outbox
}

// Dialect is "mysql" or "sqlite".
func (s *Store) Dialect() string { return s.dialect }

// DB is the underlying gorm handle, for tests and benchmarks.
func (s *Store) DB() *gorm.DB { return s.db }

// Open connects to the database named by databaseURL and migrates it.
// "mysql://user:pass@host:port/db?param=value" selects MySQL; "sqlite:PATH"
// or an empty URL selects SQLite (at dataDir/meeting.db when empty).
func Open(ctx context.Context, databaseURL, dataDir string, log *slog.Logger) (*Store, error) {
	dialector, dialect, err := dialectorFor(databaseURL, dataDir)
	if err != nil {
		return nil, err
	}
	db, err := gorm.Open(dialector, &gorm.Config{
		TranslateError: true,
		NowFunc:        func() time.Time { return time.Now().UTC().Truncate(time.Millisecond) },
		Logger:         logger.Discard,
	})
	if err != nil {
		return nil, fmt.Errorf("open %s database: %w", dialect, err)
	}
	sqlDB, err := db.DB()
	if err != nil {
		return nil, fmt.Errorf("open %s database: %w", dialect, err)
	}
	if dialect == "sqlite" {
		// One writer at a time is what SQLite allows; a single connection
		// turns "database is locked" errors into waiting.
		sqlDB.SetMaxOpenConns(1)
	} else {
		sqlDB.SetMaxOpenConns(32)
		sqlDB.SetMaxIdleConns(32)
		sqlDB.SetConnMaxLifetime(30 * time.Minute)
	}
	s := &Store{db: db, dialect: dialect}
	if err := s.Ping(ctx); err != nil {
		_ = sqlDB.Close()
		return nil, err
	}
	if err := s.migrate(ctx, log); err != nil {
		_ = sqlDB.Close()
		return nil, err
	}
	if log != nil {
		log.Info("database ready", "dialect", dialect)
	}
	return s, nil
}

// Close closes the connection pool.
func (s *Store) Close() error {
	sqlDB, err := s.db.DB()
	if err != nil {
		return err
	}
	return sqlDB.Close()
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	sqlDB, err := s.db.DB()
	if err != nil {
		return fmt.Errorf("ping database: %w", err)
	}
	if err := sqlDB.PingContext(ctx); err != nil {
		return fmt.Errorf("ping database: %w", err)
	}
	return nil
}

// migrate creates or upgrades the tables. It is idempotent and keeps the
// rows of a database created with the seed's DDL.
//
// Columns of the seed's DDL that are narrower than the models (room_basic's
// identity and name) are widened. When room_basic gains max_participants,
// its rows get the default, 50, or the number of their participants where
// that is more (capped at meeting.MaxParticipantsLimit), so that every row
// keeps within its limit.
func (s *Store) migrate(ctx context.Context, log *slog.Logger) error {
	db := s.db.WithContext(ctx)
	m := db.Migrator()
	hadLimit := m.HasTable(&Meeting{}) && m.HasColumn(&Meeting{}, "MaxParticipants")
	if err := db.AutoMigrate(&User{}, &Meeting{}, &Member{}, &OutboxEntry{}, &ClusterRow{}); err != nil {
		return fmt.Errorf("migrate database: %w", err)
	}
	if hadLimit {
		return nil
	}
	const members = "(SELECT COUNT(*) FROM room_user WHERE room_user.rid = room_basic.id AND room_user.deleted_at IS NULL)"
	res := db.Exec("UPDATE room_basic SET max_participants = CASE WHEN "+members+" > ? THEN ? ELSE "+members+" END WHERE "+members+" > max_participants",
		meeting.MaxParticipantsLimit, meeting.MaxParticipantsLimit)
	if res.Error != nil {
		return fmt.Errorf("migrate database: set max_participants of existing meetings: %w", res.Error)
	}
	var over int64
	if err := db.Model(&Meeting{}).Where(members + " > max_participants").Count(&over).Error; err != nil {
		return fmt.Errorf("migrate database: check max_participants: %w", err)
	}
	if log != nil && (res.RowsAffected > 0 || over > 0) {
		log.Warn("meetings with more participants than the default max_participants",
			"raised", res.RowsAffected, "over_the_limit", over, "limit", meeting.MaxParticipantsLimit)
	}
	return nil
}

func dialectorFor(databaseURL, dataDir string) (gorm.Dialector, string, error) {
	switch {
	case databaseURL == "" || strings.HasPrefix(databaseURL, "sqlite:"):
		path := strings.TrimPrefix(strings.TrimPrefix(databaseURL, "sqlite:"), "//")
		if path == "" {
			if dataDir == "" {
				return nil, "", errors.New("no database: set a database URL or a data directory")
			}
			if err := os.MkdirAll(dataDir, 0o700); err != nil {
				return nil, "", fmt.Errorf("create data directory: %w", err)
			}
			path = filepath.Join(dataDir, "meeting.db")
		}
		if err := privateFile(path); err != nil {
			return nil, "", err
		}
		dsn := "file:" + path + "?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)&_time_format=sqlite"
		return sqlite.Open(dsn), "sqlite", nil
	case strings.HasPrefix(databaseURL, "mysql://"):
		dsn, err := MySQLDSN(databaseURL)
		if err != nil {
			return nil, "", err
		}
		return mysql.Open(dsn), "mysql", nil
	default:
		return nil, "", fmt.Errorf("database URL %q: want mysql://user:pass@host:port/db or sqlite:PATH", redact(databaseURL))
	}
}

// privateFile creates the SQLite file at path with mode 0600 before SQLite
// opens it (SQLite gives its -wal and -shm files the same mode), or makes
// an existing one 0600: it holds password hashes.
func privateFile(path string) error {
	if strings.HasPrefix(path, ":memory:") || strings.HasPrefix(path, "file:") || strings.Contains(path, "?") {
		return nil // not a plain path: SQLite's own business
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("open database file: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("open database file: %w", err)
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if err := os.Chmod(p, 0o600); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("make the database file private: %w", err)
		}
	}
	return nil
}

// MySQLDSN turns mysql://user:pass@host:port/db?params into the driver's DSN,
// with UTC times parsed into time.Time and utf8mb4.
func MySQLDSN(databaseURL string) (string, error) {
	u, err := url.Parse(databaseURL)
	if err != nil || u.Scheme != "mysql" || u.Host == "" {
		return "", fmt.Errorf("database URL %q: want mysql://user:pass@host:port/db", redact(databaseURL))
	}
	db := strings.TrimPrefix(u.Path, "/")
	if db == "" || strings.Contains(db, "/") {
		return "", fmt.Errorf("database URL %q: name one database in the path", redact(databaseURL))
	}
	cfg := mysqldriver.NewConfig()
	cfg.Net = "tcp"
	cfg.Addr = u.Host
	if u.Port() == "" {
		cfg.Addr = u.Host + ":3306"
	}
	cfg.User = u.User.Username()
	cfg.Passwd, _ = u.User.Password()
	cfg.DBName = db
	cfg.ParseTime = true
	cfg.Loc = time.UTC
	cfg.Params = map[string]string{"charset": "utf8mb4"}
	for k, v := range u.Query() {
		cfg.Params[k] = v[len(v)-1]
	}
	return cfg.FormatDSN(), nil
}

// redact hides a password in a database URL for messages.
func redact(databaseURL string) string {
	u, err := url.Parse(databaseURL)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}
