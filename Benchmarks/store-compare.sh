#!/usr/bin/env bash
# The PostgreSQL store against the embedded SQLite store, one run: pgbench -S through one gateway
# recording into each (the store must not become the bottleneck), and the events per second
# each store takes through the record writer's group commit (Benchmarks/Sources/StoreBench).
# Usage: Benchmarks/store-compare.sh [--seconds 15] [--events 200000]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SECONDS_RUN=15
EVENTS=200000
while [ $# -gt 0 ]; do
  case $1 in
    --seconds) SECONDS_RUN=$2; shift 2 ;;
    --events) EVENTS=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

bash scripts/install-deps.sh
swift build -c release --product sluice 2>&1 | tail -1
swift build -c release --package-path Benchmarks --product StoreBench 2>&1 | tail -1
SLUICE=$ROOT/.build/release/sluice
BENCH=$ROOT/Benchmarks/.build/release/StoreBench
export PGSSLMODE=disable
WORK=$(mktemp -d /tmp/sluice-storebench.XXXXXX)
chmod 755 "$WORK"
source "$ROOT/Tests/IntegrationTests/pg-server.sh"
PIDS=()
cleanup() {
  stop_all "${PIDS[@]}"
  pg_stop "$WORK/target"
  pg_stop "$WORK/store"
  rm -rf "$WORK"
}
trap cleanup EXIT
source "$ROOT/Tests/IntegrationTests/lib.sh"
source "$ROOT/Benchmarks/lib.sh"

# The target and the store are two clusters, as in a deployment; the store keeps PostgreSQL's
# durable defaults (pg-server.sh turns fsync off for test speed: turned back on here).
pg_start "$WORK/target"
TARGET_PORT=$PGPORT_TEST
psql -h "$WORK/target" -p "$TARGET_PORT" -U postgres -q -c "ALTER DATABASE app OWNER TO scram_user"
PGPASSWORD=$PG_PASSWORD pgbench -h 127.0.0.1 -p "$TARGET_PORT" -U scram_user -i -s 10 -q app >/dev/null 2>&1
pg_start "$WORK/store"
STORE_PORT=$PGPORT_TEST
sed -i -e 's/^fsync = off/fsync = on/' -e 's/^synchronous_commit = off/synchronous_commit = on/' -e 's/^full_page_writes = off/full_page_writes = on/' \
  "$WORK/store/data/postgresql.conf"
pg_as_owner "$PG_BIN/pg_ctl" -D "$WORK/store/data" -l "$WORK/store/server.log" -w restart >/dev/null
psql -h "$WORK/store" -p "$STORE_PORT" -U postgres -q -v ON_ERROR_STOP=1 <<EOF
CREATE ROLE sluice LOGIN PASSWORD '$PG_PASSWORD';
CREATE DATABASE sluice OWNER sluice;
CREATE DATABASE bench OWNER sluice;
EOF
export APP_DB_PASSWORD=$PG_PASSWORD SLUICE_STORE_PASSWORD=$PG_PASSWORD

run_pgbench() {   # NAME STORE_LINE
  local admin pg
  admin=$(free_port); pg=$(free_port)
  mkdir -p "$WORK/$1"
  cat >"$WORK/$1.yaml" <<EOF
listen: { admin: 127.0.0.1:$admin, postgres: 127.0.0.1:$pg, ssh: off, http: off, kubernetes: off }
postgres: { require_tls: false }
state_dir: $WORK/$1
$2
detectors: [$ROOT/corpora]
connections:
  - name: bench
    type: postgres
    target: 127.0.0.1:$TARGET_PORT
    database: app
    credential: { username: scram_user, password_env: APP_DB_PASSWORD }
    access: { groups: [eng] }
    masking: { profile: default }
EOF
  "$SLUICE" serve --config "$WORK/$1.yaml" >"$WORK/$1.log" 2>&1 &
  local pid=$!
  PIDS+=("$pid")
  wait_http "http://127.0.0.1:$admin/healthz" || { cat "$WORK/$1.log"; exit 1; }
  local token
  token=$("$SLUICE" token --config "$WORK/$1.yaml" --user bench --groups eng)
  PGPASSWORD=$token pgbench -h 127.0.0.1 -p "$pg" -U bench -S -c 8 -j 2 -T "$SECONDS_RUN" -n bench 2>/dev/null |
    awk '/^tps/ {print int($3)}' | head -1
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
}

echo "pgbench -S through one gateway, SQLite store ..." >&2
SQLITE_TPS=$(run_pgbench sqlite "store: sqlite:$WORK/sqlite/sluice.db")
echo "pgbench -S through one gateway, PostgreSQL store ..." >&2
PG_TPS=$(run_pgbench postgres "store: { url: 'postgres://sluice@127.0.0.1:$STORE_PORT/sluice?sslmode=disable', password_env: SLUICE_STORE_PASSWORD }")
EVENTS_IN_PG=$(psql -h "$WORK/store" -p "$STORE_PORT" -U postgres -d sluice -Atc "select count(*) from events")

echo "group commit, $EVENTS events of 200 bytes from 32 sessions ..." >&2
SQLITE_RATE=$("$BENCH" "sqlite:$WORK/bench.db" "$EVENTS" 200 32 | sed 's/.*events_per_s=//')
PG_RATE=$("$BENCH" "postgres://sluice@127.0.0.1:$STORE_PORT/bench?sslmode=disable" "$EVENTS" 200 32 | sed 's/.*events_per_s=//')

echo
echo "pgbench -S -c 8 -j 2 -T $SECONDS_RUN through one gateway (masking on); store writes $EVENTS events of 200 B; one run"
echo
echo "| measurement | SQLite store | PostgreSQL store | PostgreSQL ÷ SQLite | target |"
echo "|---|---:|---:|---:|---|"
python3 - "$SQLITE_TPS" "$PG_TPS" "$SQLITE_RATE" "$PG_RATE" "$EVENTS_IN_PG" <<'PY'
import sys
s_tps, p_tps, s_rate, p_rate, recorded = (float(x) for x in sys.argv[1:])
print(f"| pgbench -S TPS | {s_tps:,.0f} | {p_tps:,.0f} | {p_tps / s_tps:.2f}× | ≥ 0.9× |")
print(f"| events/s through the record writer (group commit) | {s_rate:,.0f} | {p_rate:,.0f} | {p_rate / s_rate:.2f}× | |")
print(f"| events the PostgreSQL run recorded | | {recorded:,.0f} | | |")
PY
