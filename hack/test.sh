#!/usr/bin/env bash
# The whole test suite, for a fresh Debian machine with Go. It installs what the
# tests need when it is missing (coturn's test client, Chromium and Firefox for the
# browser tests, the Kubernetes test binaries), starts a private, throwaway MariaDB and
# stops it on exit, checks formatting and generated files, then runs every Go
# test under the race detector. Safe to run again: installs are skipped and heavy builds are cached
# under ~/.cache/meeting. It changes no system service.
set -euo pipefail
cd "$(dirname "$0")/.."
. hack/lib.sh

log "system packages"
command -v make >/dev/null || apt_install make
# hack/local-cluster.sh (test/cluster) makes certificates with openssl, probes with curl;
# the test looks for leftover processes with pgrep.
apt_install openssl curl procps
# A private MariaDB for the tests, removed when this script exits (see hack/lib.sh);
# MEETING_TEST_MYSQL_URL set by the caller names a server to use instead.
trap cleanup_hack EXIT
start_test_mariadb

log "coturn: turnutils_uclient and turnserver for the TURN tests (no system turnserver left running)"
if ! command -v turnutils_uclient >/dev/null || ! command -v turnserver >/dev/null; then
  # Installing coturn would start a system turnserver on 3478: apt_install_no_start
  # forbids starting services for the install only (hack/lib.sh), and the service
  # just installed is then disabled so that it does not start at the next boot.
  apt_install_no_start coturn
  if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
    sudo_if_needed systemctl disable --now coturn >/dev/null 2>&1 || true
  fi
fi

log "chromium for the browser tests (test/browser drives /usr/lib/chromium/chromium)"
apt_install chromium
log "firefox-esr for the browser tests (test/browser drives /usr/bin/firefox-esr over WebDriver BiDi)"
apt_install firefox-esr

log "checks: gofmt, go vet"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './node_modules/*'))
if [ -n "$unformatted" ]; then log "gofmt would change:"; echo "$unformatted"; exit 1; fi
go vet ./...
# hack/image is its own module (go-containerregistry stays out of go.mod): ./... skips it.
(cd hack/image && GOWORK=off go vet ./...)

log "Kubernetes test binaries: kube-apiserver, etcd, kubectl, kube-controller-manager, kube-scheduler, kwok, helm, controller-gen (cached builds)"
KUBEBUILDER_ASSETS=$(hack/install-k8s-tools.sh)
export KUBEBUILDER_ASSETS

log "generated files up to date (make verify)"
make verify

log "go test -race"
go test -race -count=1 -timeout 40m ./...
