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
