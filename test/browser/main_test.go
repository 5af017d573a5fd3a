// Package browser drives the web client in a real Chromium: the built
// meeting binary runs standalone, two browser contexts are two users, and
// Chromium's fake camera and microphone feed real calls through the SFU.
//
// Chromium gathers ICE candidates on every interface of the machine, so the
// test binary re-executes itself inside a network namespace that has only
// loopback (unshare -n, then ip link set lo up). Where no namespace can be
// made the tests skip, and say why.
//
// Debian's chromium is needed (hack/test.sh installs it); MEETING_CHROMIUM
// names another binary, MEETING_E2E_BINARY an already built meeting.
// TestFirefoxCall also drives Debian's firefox-esr (hack/test.sh installs
// it too; MEETING_FIREFOX names another) over WebDriver BiDi (bidi_test.go)
// in a call with Chromium; it skips, saying so, where Firefox is missing.
// Screenshots go to $MEETING_SCREENSHOTS (default: a temporary directory,
// logged), a failed test's pages included; -update (or `make screenshots`)
// also copies the call test's into docs/images.
package browser

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// netnsEnv marks the test binary that runs inside the namespace.
const netnsEnv = "MEETING_BROWSER_NETNS"

// noNamespace is why the tests skip; empty inside the namespace.
var noNamespace string

func TestMain(m *testing.M) {
	if os.Getenv(netnsEnv) != "" {
		code := m.Run()
		stopSuite()
		os.Exit(code)
	}
	code, err := runInNamespace()
	if err == nil {
		os.Exit(code)
	}
	noNamespace = err.Error()
	os.Exit(m.Run())
}

// unshareArgs runs a shell inside a new network namespace with loopback up;
// without root it maps the user to root in a new user namespace too.
func unshareArgs(script string, args ...string) []string {
	a := []string{"-n"}
	if os.Getuid() != 0 {
		a = []string{"-r", "-n"}
	}
	return append(append(a, "--", "sh", "-c", "ip link set lo up && "+secondIface+script), args...)
}

// secondIface gives the namespace a second interface, a veth pair that
// reaches nothing, with 10.255.0.1 and the default route: Firefox gathers
// no ICE candidate at all without a default route, and none on loopback
// whatever media.peerconnection.ice.loopback says (Firefox ESR 153). Its
// host candidate 10.255.0.1 reaches the server on 127.0.0.1 through the
// kernel's local routing. Where the pair cannot be made the tests run
// without it (Firefox's call then fails, saying ICE failed).
const secondIface = "{ ip link add meet0 type veth peer name meet1 && ip addr add 10.255.0.1/24 dev meet0 && ip link set meet1 up && ip link set meet0 up && ip route add default dev meet0 || true; } && "

// runInNamespace runs this test binary again, with the same arguments,
// inside a loopback-only network namespace and returns its exit code. It
// returns an error only when the namespace cannot be made.
func runInNamespace() (int, error) {
	self, err := os.Executable()
	if err != nil {
		return 0, fmt.Errorf("find the test binary: %w", err)
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		return 0, errors.New("no unshare command (util-linux)")
	}
	if out, err := exec.Command("unshare", unshareArgs("true")...).CombinedOutput(); err != nil {
		return 0, fmt.Errorf("unshare %s: %v: %s", strings.Join(unshareArgs("true"), " "), err, strings.TrimSpace(string(out)))
	}
	cmd := exec.Command("unshare", unshareArgs(`exec "$0" "$@"`, append([]string{self}, os.Args[1:]...)...)...)
	cmd.Env = append(os.Environ(), netnsEnv+"=1")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	err = cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode(), nil
	}
	if err != nil {
		return 0, fmt.Errorf("run the tests in a network namespace: %w", err)
	}
	return 0, nil
}

// needNamespace skips t when the tests could not move into a loopback-only
// network namespace.
func needNamespace(t testing.TB) {
	t.Helper()
	if noNamespace != "" {
		t.Skipf("browser tests need a network namespace with only loopback (Chromium gathers ICE candidates on every interface), and none could be made here: %s", noNamespace)
	}
}
