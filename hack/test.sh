#!/usr/bin/env bash
# The whole test suite, for a fresh Debian machine with Go. It installs and starts
# what the tests need when it is missing (MariaDB, coturn's test client, the
# Kubernetes test binaries), checks formatting and generated files, then runs
# every Go test under the race detector. Safe to run again: installs are skipped
# and heavy builds are cached under ~/.cache/meeting.
set -euo pipefail
cd "$(dirname "$0")/.."
. hack/lib.sh

log "system packages"
command -v make >/dev/null || apt_install make
ensure_mariadb

log "coturn: turnutils_uclient and turnserver for the TURN tests (no system turnserver left running)"
if ! command -v turnutils_uclient >/dev/null || ! command -v turnserver >/dev/null; then
  # Installing coturn starts a system turnserver on 3478 unless policy-rc.d forbids
  # starting services; one is put in place for the install when there is none.
  own_policy=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    sudo_if_needed sh -c 'printf "#!/bin/sh\nexit 101\n" > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d'
    own_policy=1
  fi
  apt_install coturn
  if [ -n "$own_policy" ]; then sudo_if_needed rm -f /usr/sbin/policy-rc.d; fi
  if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
    sudo_if_needed systemctl disable --now coturn >/dev/null 2>&1 || true
  fi
fi

log "checks: gofmt, go vet"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './node_modules/*'))
if [ -n "$unformatted" ]; then log "gofmt would change:"; echo "$unformatted"; exit 1; fi
go vet ./...

log "Kubernetes test binaries: kube-apiserver, etcd, kubectl, helm, controller-gen (cached builds)"
KUBEBUILDER_ASSETS=$(hack/install-k8s-tools.sh)
export KUBEBUILDER_ASSETS

log "generated files up to date (make verify)"
make verify

log "go test -race"
go test -race -count=1 -timeout 40m ./...
