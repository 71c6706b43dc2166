#!/usr/bin/env bash
# Soak: SOAK_MINUTES (default 20) of SOAK_SESSIONS (default 200) concurrent clients through one
# gateway — real psql, ssh and curl against a real PostgreSQL server, a real sshd and a real HTTP
# upstream — connecting and leaving, with a statement held for review every few seconds and
# approved. The gateway's RSS, descriptors and threads are sampled each minute; at the end every
# session the clients saw must be in the record, sealed, and `sluice audit verify` must pass.
# Not part of `make test` (it takes 20 minutes); docs/operations.md has the last result.
#   bash Tests/Soak/soak.sh                     # the release build, 20 minutes, 200 sessions
#   SOAK_MINUTES=3 SOAK_SESSIONS=60 bash Tests/Soak/soak.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
MINUTES=${SOAK_MINUTES:-20}
SESSIONS=${SOAK_SESSIONS:-200}
WARMUP=${SOAK_WARMUP_MINUTES:-3}
if [ -z "${SLUICE:-}" ]; then
  swift build -c release --product sluice 2>&1 | grep -E "error|Build" || true
  SLUICE=$ROOT/.build/release/sluice
fi
WORK=$(mktemp -d /tmp/sluice-soak.XXXXXX)
chmod 755 "$WORK"
PIDS=()
source "$ROOT/Tests/IntegrationTests/lib.sh"
source "$ROOT/Tests/IntegrationTests/pg-server.sh"
source "$ROOT/Tests/IntegrationTests/sshd.sh"
cleanup() {
  for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  pkill -9 -f "$WORK/worker" 2>/dev/null || true
  pg_stop "$WORK/pg" 2>/dev/null || true
  [ -n "${KEEP:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT

PG_WORKERS=$((SESSIONS * 2 / 5))
SSH_WORKERS=$((SESSIONS * 3 / 10))
HTTP_WORKERS=$((SESSIONS - PG_WORKERS - SSH_WORKERS))
# SOAK_ONLY=pg|ssh|http puts every client on one protocol (to find which one a trend comes from).
case ${SOAK_ONLY:-} in
  pg) PG_WORKERS=$SESSIONS; SSH_WORKERS=0; HTTP_WORKERS=0 ;;
  ssh) PG_WORKERS=0; SSH_WORKERS=$SESSIONS; HTTP_WORKERS=0 ;;
  http) PG_WORKERS=0; SSH_WORKERS=0; HTTP_WORKERS=$SESSIONS ;;
esac
echo "== soak: $MINUTES minutes, $SESSIONS clients ($PG_WORKERS psql, $SSH_WORKERS ssh, $HTTP_WORKERS curl), $SLUICE"

pg_start "$WORK/pg"
psql -h "$WORK/pg" -p "$PGPORT_TEST" -U postgres -d app -v ON_ERROR_STOP=1 -q <<'SQL'
CREATE TABLE customers (id int PRIMARY KEY, name text, email text, card text);
INSERT INTO customers SELECT i, 'Customer ' || i, 'user' || i || '@example.com', '4111 1111 1111 1111' FROM generate_series(1, 50) i;
CREATE TABLE audit_keep (id int);
GRANT ALL ON ALL TABLES IN SCHEMA public TO md5_user;
SQL
sshd_start "$WORK"
PIDS+=("$SSHD_PID")
for i in $(seq 1 200); do echo "line $i jane.doe@example.com card 4111 1111 1111 1111 ok"; done >"$WORK/fixture.txt"
UP_PORT=$(free_port)
python3 "$ROOT/Tests/IntegrationTests/http_upstream.py" --port "$UP_PORT" --log /dev/null >"$WORK/upstream.out" 2>&1 &
PIDS+=($!)
wait_port "$UP_PORT"

ADMIN_PORT=$(free_port); PG_PORT=$(free_port); SSH_PORT=$(free_port); HTTP_PORT=$(free_port)
export APP_DB_PASSWORD=$PG_PASSWORD API_TOKEN=upstream-token
cat >"$WORK/sluice.yaml" <<YAML
listen: { admin: 127.0.0.1:$ADMIN_PORT, postgres: 127.0.0.1:$PG_PORT, ssh: 127.0.0.1:$SSH_PORT, http: 127.0.0.1:$HTTP_PORT }
state_dir: $WORK/state
detectors: [$ROOT/corpora]
# Every client of the soak comes from 127.0.0.1: the per-source limits are the total's here.
limits: { unauthenticated_per_source: 512 }
connections:
  - name: app
    type: postgres
    target: 127.0.0.1:$PGPORT_TEST
    options: { sslmode: disable }
    database: app
    credential: { username: md5_user, password_env: APP_DB_PASSWORD }
    access: { groups: [eng] }
    masking: { profile: default }
    guardrails:
      - { class: delete_without_where, action: review }
    reviews: { approvers: [dba-leads], min_approvals: 1, timeout: 2m }
  - name: box
    type: ssh
    target: 127.0.0.1:$SSHD_PORT
    host_key: "$HOST_KEY"
    credential: { username: $TARGET_USER, private_key_file: $WORK/gateway_key }
    access: { groups: [eng] }
  - name: api
    type: http
    target: http://127.0.0.1:$UP_PORT
    credential: { token_env: API_TOKEN }
    access: { groups: [eng] }
YAML
${SOAK_WRAPPER:-} "$SLUICE" serve --config "$WORK/sluice.yaml" >"$WORK/serve.log" 2>&1 &
GATEWAY=$!
PIDS+=("$GATEWAY")
wait_http "http://127.0.0.1:$ADMIN_PORT/healthz" || { cat "$WORK/serve.log"; exit 1; }
wait_port "$PG_PORT"; wait_port "$SSH_PORT"; wait_port "$HTTP_PORT"
TOKEN=$("$SLUICE" token --config "$WORK/sluice.yaml" --user alice --groups eng --ttl 2h)
LEAD=$("$SLUICE" token --config "$WORK/sluice.yaml" --user lena --groups dba-leads --ttl 2h)
printf '#!/bin/sh\nprintf "%%s\\n" "$SLUICE_TOKEN"\n' >"$WORK/askpass"
chmod +x "$WORK/askpass"
END=$(( $(date +%s) + MINUTES * 60 ))
mkdir -p "$WORK/counts"

# Workers: each loops until END, one client session at a time, and counts the sessions that
# ended well (psql and ssh exit 0; curl requests answered 200).
cat >"$WORK/worker" <<WORKER
#!/usr/bin/env bash
kind=\$1; id=\$2
export SSH_ASKPASS=$WORK/askpass SSH_ASKPASS_REQUIRE=force DISPLAY=:0 SLUICE_TOKEN=$TOKEN
while [ "\$(date +%s)" -lt $END ]; do
  # The last held statement must still find the approver running.
  [ "\$kind" = review ] && [ "\$(date +%s)" -ge $((END - 20)) ] && break
  pause=\$((RANDOM % 4 + 1))
  case \$kind in
    pg)
      if printf 'select email, card from customers where id %% 7 = %s;\nselect pg_sleep(%s);\nselect count(*) from customers;\n' "\$((RANDOM % 7))" "\$pause" |
         psql "host=127.0.0.1 port=$PG_PORT dbname=app user=alice password=$TOKEN sslmode=require" -X -q -A -t >/dev/null 2>>"$WORK/counts/\$kind-\$id.err"; then
        echo 1 >>"$WORK/counts/\$kind-\$id"
      fi ;;
    ssh)
      if ssh -p $SSH_PORT -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR \
           -o PreferredAuthentications=keyboard-interactive,password -o PubkeyAuthentication=no -o NumberOfPasswordPrompts=1 \
           box@127.0.0.1 "cat $WORK/fixture.txt; sleep \$pause; head -20 $WORK/fixture.txt" >/dev/null 2>>"$WORK/counts/\$kind-\$id.err"; then
        echo 1 >>"$WORK/counts/\$kind-\$id"
      fi ;;
    http)
      url=http://127.0.0.1:$HTTP_PORT/api/customers
      curl -s -o /dev/null -w '%{http_code}\n' -H "Authorization: Bearer $TOKEN" "\$url" "\$url" "\$url" 2>>"$WORK/counts/\$kind-\$id.err" |
        grep -c '^200\$' >>"$WORK/counts/\$kind-\$id" || true
      sleep "\$pause" ;;
    review)
      printf 'delete from audit_keep;\n' | psql "host=127.0.0.1 port=$PG_PORT dbname=app user=alice password=$TOKEN sslmode=require" -X -q -A -t \
        >/dev/null 2>>"$WORK/counts/\$kind-\$id.err" && echo 1 >>"$WORK/counts/\$kind-\$id"
      sleep 3 ;;
    approve)
      for rid in \$("$SLUICE" reviews list --config "$WORK/sluice.yaml" --status pending --json 2>/dev/null |
                   /usr/bin/python3 -c 'import json,sys; print(" ".join(r["id"] for r in json.load(sys.stdin)))' 2>/dev/null); do
        "$SLUICE" reviews approve "\$rid" --config "$WORK/sluice.yaml" --token "$LEAD" >/dev/null 2>&1 && echo 1 >>"$WORK/counts/\$kind-\$id"
      done
      sleep 2 ;;
  esac
done
WORKER
chmod +x "$WORK/worker"
for i in $(seq 1 "$PG_WORKERS"); do "$WORK/worker" pg "$i" & done
for i in $(seq 1 "$SSH_WORKERS"); do "$WORK/worker" ssh "$i" & done
for i in $(seq 1 "$HTTP_WORKERS"); do "$WORK/worker" http "$i" & done
"$WORK/worker" review 1 &
"$WORK/worker" approve 1 &

sample() {
  local rss fds threads open
  rss=$(awk '/VmRSS/ {print $2}' "/proc/$GATEWAY/status")
  threads=$(awk '/Threads/ {print $2}' "/proc/$GATEWAY/status")
  fds=$(ls "/proc/$GATEWAY/fd" | wc -l)
  open=$(curl -fsS "http://127.0.0.1:$ADMIN_PORT/healthz" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("open_sessions", "?"))')
  printf '| %6s | %8s | %5s | %7s | %13s |\n' "$1" "$((rss / 1024))" "$fds" "$threads" "$open" | tee -a "$WORK/samples.md"
}
printf '| minute | RSS (MiB) | descriptors | threads | open sessions |\n|---:|---:|---:|---:|---:|\n' | tee "$WORK/samples.md"
sample 0
for minute in $(seq 1 "$MINUTES"); do
  sleep $(( END - (MINUTES - minute) * 60 - $(date +%s) > 0 ? END - (MINUTES - minute) * 60 - $(date +%s) : 1 ))
  sample "$minute"
done
echo "== waiting for the clients to leave"
wait_start=$(date +%s)
while pgrep -f "$WORK/worker" >/dev/null && [ $(( $(date +%s) - wait_start )) -lt 120 ]; do sleep 1; done
sleep 2
sample end

count() { cat "$WORK"/counts/"$1"-* 2>/dev/null | awk '{s += $1} END {print s + 0}'; }
PG_OK=$(count pg); SSH_OK=$(count ssh); HTTP_OK=$(count http); REVIEWS=$(count review); APPROVED=$(count approve)
stop_gateway "$GATEWAY"
# Every session in the record, by protocol, and how many were never ended (read-only).
read -r STORE_PG STORE_SSH STORE_HTTP OPEN <<<"$(python3 - "$WORK/state/sluice.db" <<'PY'
import sqlite3, sys
db = sqlite3.connect("file:%s?mode=ro" % sys.argv[1], uri=True)
kinds = dict(db.execute("select kind, count(*) from sessions group by kind").fetchall())
open_ = db.execute("select count(*) from sessions where ended_at is null").fetchone()[0]
print(kinds.get("postgres", 0), kinds.get("ssh", 0), kinds.get("http", 0), open_)
PY
)"
"$SLUICE" audit verify --config "$WORK/sluice.yaml" >"$WORK/verify.out" 2>&1 && VERIFY=0 || VERIFY=$?
FAILED_CLIENTS=$(cat "$WORK"/counts/*.err 2>/dev/null | grep -v -e '^$' -e '^NOTICE:' -e '^HINT:' | wc -l)

echo
echo "clients' sessions that ended well: psql $PG_OK (+ $REVIEWS reviewed deletes, $APPROVED approvals), ssh $SSH_OK, curl requests $HTTP_OK"
echo "sessions in the record: postgres $STORE_PG, ssh $STORE_SSH, http $STORE_HTTP; never ended: $OPEN"
echo "client error lines: $FAILED_CLIENTS (first ones below)"
cat "$WORK"/counts/*.err 2>/dev/null | grep -v -e '^$' -e '^NOTICE:' -e '^HINT:' | sed 's/r-[0-9a-f]*/r-…/g' | sort | uniq -c | sort -rn | head -5
tail -n 3 "$WORK/verify.out"
echo "gateway stopped in $STOP_SECONDS s (exit $STOP_RC)"

# Flat after warm-up: the least-squares slope per minute of each measure, from the end of the
# warm-up on, must stay under a small bound (a leak of a few KiB per session shows as MiB/min).
python3 - "$WORK/samples.md" "$WARMUP" >"$WORK/flat.out" <<'PY' && FLAT=0 || FLAT=$?
import sys
rows = [l.strip("|\n").split("|") for l in open(sys.argv[1]) if l.startswith("|") and l.split("|")[1].strip().isdigit()]
rows = [[int(c.strip()) for c in r[:4]] for r in rows]
warm = [r for r in rows if r[0] >= int(sys.argv[2])]
if len(warm) < 3:
    print("too few samples after warm-up to judge"); sys.exit(0)
ok = True
for index, name, bound in ((1, "RSS (MiB)", 1.0), (2, "descriptors", 3.0), (3, "threads", 1.0)):
    xs, ys = [r[0] for r in warm], [r[index] for r in warm]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    flat = slope <= bound
    ok &= flat
    print("%s: %d to %d after warm-up, slope %+.2f per minute (bound %.1f): %s" % (name, min(ys), max(ys), slope, bound, "flat" if flat else "GROWING"))
sys.exit(0 if ok else 1)
PY
cat "$WORK/flat.out"
ok=1
[ "$FLAT" = 0 ] || { echo "FAIL: resources grow after warm-up"; ok=0; }
[ "$VERIFY" = 0 ] || { echo "FAIL: audit verify"; ok=0; }
[ "$STORE_PG" -ge "$PG_OK" ] && [ "$STORE_SSH" -ge "$SSH_OK" ] && [ "$STORE_HTTP" -ge "$HTTP_OK" ] || { echo "FAIL: sessions missing from the record"; ok=0; }
grep -q '^unsealed' "$WORK/verify.out" && { echo "FAIL: unsealed sessions after a graceful stop"; ok=0; }
[ "$OPEN" = 0 ] || { echo "FAIL: $OPEN sessions never ended"; ok=0; }
[ "$STOP_RC" = 0 ] || { echo "FAIL: the gateway did not stop cleanly"; ok=0; }
[ "$ok" = 1 ] && echo "soak: OK" || { echo "soak: FAILED"; exit 1; }
