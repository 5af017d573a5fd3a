package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/term"

	"meeting.dev/meeting/internal/auth"
	"meeting.dev/meeting/internal/store"
)

const adminUsage = `
Commands:
  reset-password USER   set USER's password to one read from standard input
                        (prompted for without echo on a terminal) and revoke
                        every API token issued to USER before
`

func runAdmin(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return adminCommand(ctx, args, os.Stdin, stdout, stderr)
}

// adminCommand runs `meeting admin COMMAND`: account maintenance on the
// database itself, for the operator who runs the processes (no API token).
func adminCommand(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	var (
		dataDir, databaseURL, databaseURLFile string
		lf                                    logFlags
	)
	fs := newFlagSet("meeting admin COMMAND", "Maintains accounts directly in the database (SQLite in --data-dir, or MySQL with --database-url).", stdout, adminUsage)
	fs.StringVar(&dataDir, "data-dir", defaultDataDir(), "directory of standalone's SQLite database")
	fs.StringVar(&databaseURL, "database-url", "", "mysql://user:pass@host:port/db selects MySQL; empty means SQLite in the data directory")
	fs.StringVar(&databaseURLFile, "database-url-file", "", "file holding the database URL (instead of --database-url, whose value shows in ps)")
	lf.register(fs, "text")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	log, err := lf.logger(stderr)
	if err != nil {
		return err
	}
	rest := fs.Args()
	if len(rest) == 0 {
		fs.Usage()
		return errors.New("admin: name a command")
	}
	if rest[0] != "reset-password" {
		return fmt.Errorf("admin: unknown command %q (commands: reset-password)", rest[0])
	}
	if len(rest) != 2 {
		return errors.New("admin reset-password: name exactly one user: meeting admin reset-password USER")
	}
	user := rest[1]
	if databaseURLFile != "" {
		if databaseURL != "" {
			return errors.New("--database-url and --database-url-file are both set: give one")
		}
		if databaseURL, err = readSecretFile(databaseURLFile); err != nil {
			return fmt.Errorf("--database-url-file: %w", err)
		}
	}
	if databaseURL == "" && !databaseExists(dataDir) {
		return fmt.Errorf("no database in %s: name the data directory with --data-dir or MySQL with --database-url", dataDir)
	}
	password, err := readNewPassword(stdin, stderr)
	if err != nil {
		return err
	}
	st, err := store.Open(ctx, databaseURL, dataDir, nil)
	if err != nil {
		return err
	}
	defer st.Close()
	acc, err := st.UserByName(ctx, user)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("admin reset-password: no user named %q", user)
	}
	if err != nil {
		return err
	}
	hash, err := auth.Hasher{}.Hash(password)
	if err != nil {
		return err
	}
	gen, err := st.ChangePassword(ctx, acc.ID, hash)
	if err != nil {
		return err
	}
	log.Info("password reset; older tokens revoked", "user_id", acc.ID, "username", acc.Username, "token_generation", gen)
	fmt.Fprintf(stdout, "The password of %s is reset; tokens issued before are revoked.\n", acc.Username)
	return nil
}

// databaseExists says whether standalone's SQLite file is in dataDir, so
// that a mistyped --data-dir is not answered with a new, empty database.
func databaseExists(dataDir string) bool {
	_, err := os.Stat(filepath.Join(dataDir, "meeting.db"))
	return err == nil
}

// readNewPassword reads the new password: on a terminal, twice and without
// echo; otherwise the first line of stdin. It checks the API's rules.
func readNewPassword(stdin io.Reader, prompt io.Writer) (string, error) {
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		read := func(label string) (string, error) {
			fmt.Fprint(prompt, label)
			b, err := term.ReadPassword(int(f.Fd()))
			fmt.Fprintln(prompt)
			return string(b), err
		}
		p, err := read("New password: ")
		if err != nil {
			return "", fmt.Errorf("read password: %w", err)
		}
		again, err := read("Again: ")
		if err != nil {
			return "", fmt.Errorf("read password: %w", err)
		}
		if p != again {
			return "", errors.New("the passwords differ")
		}
		return p, checkPassword(p)
	}
	line, err := bufio.NewReader(io.LimitReader(stdin, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read password from stdin: %w", err)
	}
	p := strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
	return p, checkPassword(p)
}

func checkPassword(p string) error {
	if len(p) < 8 || len(p) > auth.MaxPasswordBytes {
		return fmt.Errorf("the password must be 8 to %d bytes long", auth.MaxPasswordBytes)
	}
	return nil
}
