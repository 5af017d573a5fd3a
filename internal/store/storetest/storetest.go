// Package storetest gives tests a fresh, real database: a new MariaDB/MySQL
// database per test (dropped afterwards) or a SQLite file in a temporary
// directory.
package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"testing"

	_ "github.com/go-sql-driver/mysql" // the MySQL driver for the admin connection

	"meeting.dev/meeting/internal/store"
)

// Dialects are the databases every store test runs on.
var Dialects = []string{"mysql", "sqlite"}

// URLVar names the MySQL server tests use, as mysql://USER[:PASS]@HOST:PORT/.
// hack/test.sh and hack/bench.sh start a private, throwaway MariaDB on a
// random port of 127.0.0.1 and export it; to run tests by hand, start one the
// same way (`. hack/lib.sh; start_test_mariadb`, then stop_test_mariadb) or
// point it at a server whose account may create and drop databases.
const URLVar = "MEETING_TEST_MYSQL_URL"

// fallbackURL is used when URLVar is unset, for a developer who runs a
// server of their own there; the test scripts never rely on it.
const fallbackURL = "mysql://root@127.0.0.1:3306/"

// ServerURL is the MySQL server tests use: $MEETING_TEST_MYSQL_URL, or
// mysql://root@127.0.0.1:3306/ when it is unset.
func ServerURL() string {
	if u := os.Getenv(URLVar); u != "" {
		return u
	}
	return fallbackURL
}

// NewDatabaseURL creates an empty database on the test MySQL server and
// returns its mysql:// URL; the database is dropped when the test ends.
func NewDatabaseURL(tb testing.TB) string {
	tb.Helper()
	base, err := url.Parse(ServerURL())
	if err != nil {
		tb.Fatalf("%s: %v", URLVar, err)
	}
	admin, err := sql.Open("mysql", adminDSN(base))
	if err != nil {
		tb.Fatalf("connect to MySQL: %v", err)
	}
	defer admin.Close()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "meeting_test_" + hex.EncodeToString(b)
	if _, err := admin.Exec("CREATE DATABASE " + name + " CHARACTER SET utf8mb4"); err != nil {
		tb.Fatalf("create test database on %s (run hack/test.sh, which starts a private MariaDB, or set "+URLVar+"): %v", base.Redacted(), err)
	}
	tb.Cleanup(func() {
		admin, err := sql.Open("mysql", adminDSN(base))
		if err != nil {
			tb.Errorf("drop test database: %v", err)
			return
		}
		defer admin.Close()
		if _, err := admin.Exec("DROP DATABASE IF EXISTS " + name); err != nil {
			tb.Errorf("drop test database: %v", err)
		}
	})
	u := *base
	u.Path = "/" + name
	return u.String()
}

// Exec runs statements on the test database at databaseURL.
func Exec(tb testing.TB, databaseURL string, stmts ...string) {
	tb.Helper()
	dsn, err := store.MySQLDSN(databaseURL)
	if err != nil {
		tb.Fatal(err)
	}
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			tb.Fatalf("%s: %v", s, err)
		}
	}
}

func adminDSN(u *url.URL) string {
	pass, _ := u.User.Password()
	return fmt.Sprintf("%s:%s@tcp(%s)/?parseTime=true", u.User.Username(), pass, u.Host)
}

// Open returns a migrated store on a fresh database of the dialect.
func Open(tb testing.TB, dialect string) *store.Store {
	tb.Helper()
	var dbURL, dir string
	switch dialect {
	case "mysql":
		dbURL = NewDatabaseURL(tb)
	case "sqlite":
		dir = tb.TempDir()
	default:
		tb.Fatalf("unknown dialect %q", dialect)
	}
	s, err := store.Open(context.Background(), dbURL, dir, nil)
	if err != nil {
		tb.Fatalf("open %s store: %v", dialect, err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	return s
}
