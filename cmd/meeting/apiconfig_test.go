package main

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"meeting.dev/meeting/internal/meeting"
)

// --lead-time and --end-grace are parsed (flags or environment) and
// validated with the rest of the API's configuration.
func TestAPIConfigSchedulePolicy(t *testing.T) {
	for _, c := range []struct {
		args  []string
		lead  time.Duration
		grace time.Duration
		err   string
	}{
		{nil, time.Minute, time.Minute, ""},
		{[]string{"--lead-time", "5m", "--end-grace", "0s"}, 5 * time.Minute, 0, ""},
		{[]string{"--lead-time", "-1s"}, 0, 0, "--lead-time -1s"},
		{[]string{"--end-grace", "25h"}, 0, 0, "--end-grace 25h0m0s"},
		{[]string{"--lead-time", "soon"}, 0, 0, "invalid value"},
	} {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			cfg := apiConfig{standalone: true}
			fs := newFlagSet("meeting", "", io.Discard, "")
			cfg.register(fs)
			err := parseFlags(fs, append([]string{"--data-dir", t.TempDir()}, c.args...))
			if err == nil {
				err = cfg.validate()
			}
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("got %v, want an error with %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p := cfg.policy(); p.LeadTime != c.lead || p.Grace != c.grace {
				t.Errorf("policy %+v, want lead %s grace %s", p, c.lead, c.grace)
			}
		})
	}
}

// The api role runs no media until it syncs with the cluster.
func TestNoRooms(t *testing.T) {
	var r meeting.Rooms = noRooms{}
	if _, err := r.Room(context.Background(), "x"); !errors.Is(err, meeting.ErrMediaNotReady) {
		t.Errorf("Room: %v, want ErrMediaNotReady", err)
	}
	if st := r.Status(context.Background(), "x"); st.Ready || st.Online != 0 {
		t.Errorf("Status: %+v", st)
	}
}

// Standalone's media flags: loopback by default; --public-ip binds every
// interface, announces the address and moves the API to :8080 unless
// --http-addr says otherwise; bad values are refused with the flag's name.
func TestMediaConfig(t *testing.T) {
	for _, c := range []struct {
		args          []string
		public, bind  string
		httpAddr, err string
	}{
		{nil, "127.0.0.1", "127.0.0.1", "127.0.0.1:8080", ""},
		{[]string{"--public-ip", "192.0.2.10"}, "192.0.2.10", "0.0.0.0", ":8080", ""},
		{[]string{"--public-ip", "192.0.2.10", "--http-addr", "127.0.0.1:9000"}, "192.0.2.10", "0.0.0.0", "127.0.0.1:9000", ""},
		{[]string{"--public-ip", "::1"}, "", "", "", "--public-ip \"::1\": want a specific IPv4 address"},
		{[]string{"--public-ip", "0.0.0.0"}, "", "", "", "--public-ip"},
		{[]string{"--public-ip", "meet.example"}, "", "", "", "--public-ip"},
		{[]string{"--udp-port", "70000"}, "", "", "", "--udp-port 70000: not a port"},
		{[]string{"--udp-port", "4000", "--turn-port", "4000"}, "", "", "", "both 4000"},
		{[]string{"--max-participants", "0"}, "", "", "", "--max-participants 0"},
	} {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			cfg := apiConfig{standalone: true}
			fs := newFlagSet("meeting", "", io.Discard, "")
			cfg.register(fs)
			err := parseFlags(fs, append([]string{"--data-dir", t.TempDir()}, c.args...))
			if err == nil {
				cfg.publicDefaults(fs)
				err = cfg.validate()
			}
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("got %v, want an error with %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			public, bind := cfg.media.addrs()
			if public.String() != c.public || bind.String() != c.bind || cfg.httpAddr != c.httpAddr {
				t.Errorf("public %s bind %s http %s, want %s %s %s", public, bind, cfg.httpAddr, c.public, c.bind, c.httpAddr)
			}
		})
	}
}

// Secrets can come from files, named by --…-file flags or their
// MEETING_…_FILE variables, so that they do not show in ps.
func TestAPIConfigSecretFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	secret := strings.Repeat("s", 40)
	jwt := write("jwt", secret+"\n")
	admin := write("admin", "admin-password\r\n")
	db := write("db", "mysql://u:p@127.0.0.1:3306/meeting")
	short := write("short", "short\n")
	empty := write("empty", "")
	for _, c := range []struct {
		name string
		args []string
		env  map[string]string
		err  string
	}{
		{"flags", []string{"--jwt-secret-file", jwt, "--admin-password-file", admin, "--database-url-file", db}, nil, ""},
		{"environment", nil, map[string]string{"MEETING_JWT_SECRET_FILE": jwt, "MEETING_ADMIN_PASSWORD_FILE": admin, "MEETING_DATABASE_URL_FILE": db}, ""},
		{"both", []string{"--jwt-secret", secret, "--jwt-secret-file", jwt}, nil, "--jwt-secret and --jwt-secret-file are both set"},
		{"missing", []string{"--admin-password-file", filepath.Join(dir, "nope")}, nil, "--admin-password-file"},
		{"empty", []string{"--jwt-secret-file", empty}, nil, "is empty"},
		{"too short", []string{"--jwt-secret-file", short}, nil, "--jwt-secret has 5 bytes"},
	} {
		t.Run(c.name, func(t *testing.T) {
			for k, v := range c.env {
				t.Setenv(k, v)
			}
			cfg := apiConfig{}
			fs := newFlagSet("meeting api", "", io.Discard, "")
			cfg.register(fs)
			err := parseFlags(fs, c.args)
			if err == nil {
				err = cfg.validate()
			}
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("got %v, want an error with %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.jwtSecret != secret || cfg.adminPassword != "admin-password" || cfg.databaseURL != "mysql://u:p@127.0.0.1:3306/meeting" {
				t.Errorf("read %q %q %q", cfg.jwtSecret, cfg.adminPassword, cfg.databaseURL)
			}
			if err := cfg.validate(); err != nil {
				t.Errorf("validate twice: %v", err)
			}
		})
	}
}

// The operator's metrics and probes listen on loopback by default, apart
// from standalone's 8080; the Deployment passes the ports its probes use.
func TestOperatorEndpointsDefaultToLoopback(t *testing.T) {
	c := defaultOperatorConfig()
	for _, a := range []string{c.metricsAddr, c.healthAddr} {
		host, port, err := net.SplitHostPort(a)
		if err != nil || host != "127.0.0.1" || port == "8080" {
			t.Errorf("default address %q: want loopback, not port 8080", a)
		}
	}
	b, err := os.ReadFile("../../config/manager/manager.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"- --metrics-addr=:8080", "- --health-addr=:8081", "containerPort: 8080}", "containerPort: 8081}", "port: health}"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("config/manager/manager.yaml lacks %q", want)
		}
	}
}
