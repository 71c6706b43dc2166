#!/usr/bin/env bash
# Runs a command with a throw-away PostgreSQL server (Debian's postgresql, installed when
# missing, in a temporary folder) and SLUICE_TEST_POSTGRES naming it, so the store tests run on
# both backends: `bash scripts/with-postgres.sh swift test --parallel`. The server is stopped
# and its folder removed when the command ends.
set -euo pipefail
cd "$(dirname "$0")/.."
source Tests/IntegrationTests/pg-server.sh
DIR=$(mktemp -d /tmp/sluice-store-pg.XXXXXX)
cleanup() { pg_stop "$DIR"; rm -rf "$DIR"; }
trap cleanup EXIT
pg_start "$DIR"
export SLUICE_TEST_POSTGRES="postgres://postgres@127.0.0.1:$PGPORT_TEST/postgres?sslmode=disable"
# The store tests fail instead of leaving the PostgreSQL half out.
export SLUICE_TEST_REQUIRE_POSTGRES=1
"$@"
