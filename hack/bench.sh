#!/usr/bin/env bash
# Runs the benchmarks that carry the product's performance targets and prints
# their figures. Needs what hack/test.sh installs.
set -euo pipefail
cd "$(dirname "$0")/.."
. hack/lib.sh
ensure_mariadb

log "REST API: GET /auth/meeting/list, 10,000 meetings on MariaDB"
go test -run '^$' -bench 'BenchmarkList' -benchmem -benchtime 3s ./internal/server/
