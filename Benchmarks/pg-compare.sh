#!/usr/bin/env bash
# One table, one run: pgbench -S direct, through Sluice (masking on), through PgBouncer
# (session mode) and through the floor (Benchmarks/Sources/NIORelay: a SwiftNIO byte relay that
# does nothing else); a 1-million-row PII result direct vs through Sluice; gateway memory with
# 1,000 idle sessions. Usage: Benchmarks/pg-compare.sh [--seconds 20] [--rows 1000000] [--idle 1000]
# PROFILE=1 also samples the gateway with perf during its pgbench run (.build/profiles/).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SECONDS_RUN=20
ROWS=1000000
IDLE=1000
while [ $# -gt 0 ]; do
  case $1 in
    --seconds) SECONDS_RUN=$2; shift 2 ;;
    --rows) ROWS=$2; shift 2 ;;
    --idle) IDLE=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
bash scripts/install-deps.sh
command -v pgbouncer >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbouncer >/dev/null; }
swift build -c release --product sluice 2>&1 | tail -1
swift build -c release --package-path Benchmarks --product NIORelay 2>&1 | tail -1
SLUICE=$ROOT/.build/release/sluice
RELAY=$ROOT/Benchmarks/.build/release/NIORelay
VENV=$ROOT/.build/venv-integration
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import psycopg' 2>/dev/null; then
  python3 -m venv "$VENV" && "$VENV/bin/pip" install -q 'psycopg[binary]'
fi

# Like for like: no TLS on any path (the gateway offers TLS; the direct server and PgBouncer here do not).
export PGSSLMODE=disable
WORK=$(mktemp -d /tmp/sluice-pgbench.XXXXXX)
chmod 755 "$WORK"
source "$ROOT/Tests/IntegrationTests/pg-server.sh"
PIDS=()
cleanup() {
  stop_all "${PIDS[@]}"
  pg_stop "$WORK/pg"
  rm -rf "$WORK"
}
trap cleanup EXIT
source "$ROOT/Tests/IntegrationTests/lib.sh"
source "$ROOT/Benchmarks/lib.sh"

pg_start "$WORK/pg"
sed -i 's/^max_connections = .*/max_connections = '"$((IDLE + 100))"'/' "$WORK/pg/data/postgresql.conf"
pg_as_owner "$PG_BIN/pg_ctl" -D "$WORK/pg/data" -l "$WORK/pg/server.log" -w restart >/dev/null
psql -h "$WORK/pg" -p "$PGPORT_TEST" -U postgres -q -c "ALTER DATABASE app OWNER TO scram_user"
PGPASSWORD=$PG_PASSWORD pgbench -h 127.0.0.1 -p "$PGPORT_TEST" -U scram_user -i -s 10 -q app >/dev/null 2>&1
psql -h "$WORK/pg" -p "$PGPORT_TEST" -U scram_user -d app -q -c "
CREATE TABLE big AS SELECT i AS id, 'user' || i || '@example.com' AS email,
  lpad((i % 899 + 100)::text, 3, '0') || '-' || lpad((i % 89 + 10)::text, 2, '0') || '-' || lpad((i % 8999 + 1000)::text, 4, '0') AS ssn,
  'order ' || (i::bigint * 7919) || ' shipped to Berlin' AS note, now() AS created FROM generate_series(1, $ROWS) i;"

ADMIN_PORT=$(free_port)
PG_PORT=$(free_port)
BOUNCER_PORT=$(free_port)
export APP_DB_PASSWORD=$PG_PASSWORD
cat >"$WORK/sluice.yaml" <<EOF
listen: { admin: 127.0.0.1:$ADMIN_PORT, postgres: 127.0.0.1:$PG_PORT, ssh: off, http: off, kubernetes: off }
# Plaintext like the direct connection and PgBouncer it is compared with (loopback only; the
# default refuses plaintext logins because the token is a password).
postgres: { require_tls: false }
state_dir: $WORK/state
detectors: [$ROOT/corpora]
connections:
  - name: bench
    type: postgres
    target: 127.0.0.1:$PGPORT_TEST
    database: app
    credential: { username: scram_user, password_env: APP_DB_PASSWORD }
    access: { groups: [eng] }
    masking: { profile: default }
    guardrails:
      - { match: '(?i)\\bdrop\\s+table\\b', action: block }
EOF
"$SLUICE" serve --config "$WORK/sluice.yaml" >"$WORK/serve.log" 2>&1 &
GATEWAY=$!
PIDS+=("$GATEWAY")
wait_http "http://127.0.0.1:$ADMIN_PORT/healthz"
TOKEN=$("$SLUICE" token --config "$WORK/sluice.yaml" --user bench --groups eng --ttl 4h)

cat >"$WORK/pgbouncer.ini" <<EOF
[databases]
app = host=127.0.0.1 port=$PGPORT_TEST dbname=app user=scram_user password=$PG_PASSWORD
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $BOUNCER_PORT
auth_type = any
pool_mode = session
max_client_conn = 2000
default_pool_size = 50
unix_socket_dir =
logfile = $WORK/pg/pgbouncer.log
EOF
chmod 644 "$WORK/pgbouncer.ini"
pg_as_owner pgbouncer "$WORK/pgbouncer.ini" >"$WORK/pgbouncer.out" 2>&1 &
PIDS+=($!)
wait_port "$BOUNCER_PORT"
FLOOR_PORT=$(free_port)
"$RELAY" tcp "$FLOOR_PORT" 127.0.0.1 "$PGPORT_TEST" >"$WORK/relay.out" 2>&1 &
PIDS+=($!)
wait_port "$FLOOR_PORT"

DIRECT="host=127.0.0.1 port=$PGPORT_TEST dbname=app user=scram_user password=$PG_PASSWORD sslmode=disable"
GATED="host=127.0.0.1 port=$PG_PORT dbname=bench user=bench password=$TOKEN sslmode=disable"
echo "$IDLE idle sessions ..." >&2
RSS_BEFORE=$(awk '/VmRSS/ {print $2}' /proc/$GATEWAY/status)
"$VENV/bin/python" - "$GATED" "$IDLE" "$GATEWAY" >"$WORK/idle.out" <<'EOF'
import sys, time, psycopg
dsn, count, pid = sys.argv[1], int(sys.argv[2]), sys.argv[3]
conns = [psycopg.connect(dsn) for _ in range(count)]
time.sleep(2)
rss = [l for l in open(f"/proc/{pid}/status") if l.startswith("VmRSS")][0].split()[1]
print(rss)
for c in conns:
    c.close()
EOF
RSS_IDLE=$(cat "$WORK/idle.out")

pgbench_run() { # label dsn-args...
  local out
  out=$(pgbench -S -c 8 -j 2 -T "$SECONDS_RUN" -n "$@" 2>&1)
  local tps lat
  tps=$(echo "$out" | sed -n 's/^tps = \([0-9.]*\).*/\1/p' | tail -1)
  lat=$(echo "$out" | sed -n 's/^latency average = \([0-9.]*\) ms/\1/p')
  echo "$tps $lat"
}
echo "pgbench -S -c 8 -j 2 -T $SECONDS_RUN (scale 10) ..." >&2
read -r D_TPS D_LAT < <(PGPASSWORD=$PG_PASSWORD pgbench_run -h 127.0.0.1 -p "$PGPORT_TEST" -U scram_user app)
profile_start "$GATEWAY"
read -r S_TPS S_LAT < <(PGPASSWORD=$TOKEN pgbench_run -h 127.0.0.1 -p "$PG_PORT" -U bench bench)
profile_stop pgbench-select
read -r B_TPS B_LAT < <(PGPASSWORD=x pgbench_run -h 127.0.0.1 -p "$BOUNCER_PORT" -U scram_user app)
read -r F_TPS F_LAT < <(PGPASSWORD=$PG_PASSWORD pgbench_run -h 127.0.0.1 -p "$FLOOR_PORT" -U scram_user app)

transfer() { # label dsn sql -> seconds bytes
  local start end bytes
  start=$(date +%s.%N)
  bytes=$(psql "$1" -X -A -t -c "$2" | wc -c)
  end=$(date +%s.%N)
  echo "$(echo "$end - $start" | bc) $bytes"
}
echo "large results ($ROWS rows) ..." >&2
read -r DC_S DC_B < <(transfer "$DIRECT" "COPY (SELECT * FROM big) TO STDOUT")
read -r SC_S SC_B < <(transfer "$GATED" "COPY (SELECT * FROM big) TO STDOUT")
read -r DS_S DS_B < <(transfer "$DIRECT" "SELECT * FROM big")
read -r SS_S SS_B < <(transfer "$GATED" "SELECT * FROM big")



python3 - <<EOF
def f(x): return float(x) if x else float('nan')
d, s, b, fl = f("$D_TPS"), f("$S_TPS"), f("$B_TPS"), f("$F_TPS")
dl, sl, bl, fll = f("$D_LAT"), f("$S_LAT"), f("$B_LAT"), f("$F_LAT")
mb = lambda byt, sec: f(byt) / f(sec) / 1e6
dc, sc = mb("$DC_B", "$DC_S"), mb("$SC_B", "$SC_S")
ds, ss = mb("$DS_B", "$DS_S"), mb("$SS_B", "$SS_S")
idle = (f("$RSS_IDLE") - f("$RSS_BEFORE")) / 1024
print("| measurement | direct | through Sluice (masking on) | PgBouncer (session) | floor (NIO byte relay) | Sluice ÷ direct | target |")
print("|---|---|---|---|---|---|---|")
print(f"| pgbench -S TPS | {d:,.0f} | {s:,.0f} | {b:,.0f} | {fl:,.0f} | {s/d:.2f}× | ≥ 0.75× direct and ≥ PgBouncer ({s/b:.2f}× PgBouncer, {s/fl:.2f}× floor) |")
print(f"| pgbench -S mean latency | {dl:.3f} ms | {sl:.3f} ms | {bl:.3f} ms | {fll:.3f} ms | {sl/dl:.2f}× | |")
print(f"| COPY {int(f('$ROWS')):,} rows TO STDOUT | {dc:,.0f} MB/s | {sc:,.0f} MB/s | – | – | {sc/dc:.2f}× | ≥ 0.5× |")
print(f"| SELECT {int(f('$ROWS')):,} rows (psql) | {ds:,.0f} MB/s | {ss:,.0f} MB/s | – | – | {ss/ds:.2f}× | ≥ 0.5× |")
print(f"| gateway RSS with {int(f('$IDLE'))} idle sessions (fresh gateway) | – | {f('$RSS_IDLE')/1024:,.0f} MiB ({idle:,.0f} MiB more than with none, {idle*1024/max(1,f('$IDLE')):,.0f} KiB each) | – | – | – | < 200 MiB |")
EOF
