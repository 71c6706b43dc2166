#!/usr/bin/env bash
# Several gateways on one PostgreSQL store (docs/deploy.md): two `sluice serve` processes share a
# real PostgreSQL store; a real PostgreSQL target and a real OpenSSH sshd sit behind them; the
# clients are the real psql and ssh. Reviews cross gateways, a gateway is killed under load, the
# store stops and comes back, and an SQLite record is migrated into PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
SLUICE=${SLUICE:-$ROOT/.build/debug/sluice}
WORK=$(mktemp -d /tmp/sluice-scale.XXXXXX)
chmod 755 "$WORK"
source "$ROOT/Tests/IntegrationTests/pg-server.sh"
source "$ROOT/Tests/IntegrationTests/lib.sh"
source "$ROOT/Tests/IntegrationTests/sshd.sh"
PIDS=()
SSHD_PID=""
cleanup() {
  for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  [ -n "$SSHD_PID" ] && kill "$SSHD_PID" 2>/dev/null || true
  pg_stop "$WORK/store"
  pg_stop "$WORK/target"
  rm -rf "$WORK"
}
trap cleanup EXIT
command -v sshpass >/dev/null || true

echo "== PostgreSQL: the store (TLS, verified) and the target, two clusters"
pg_start "$WORK/store"
STORE_PORT=$PGPORT_TEST
pg_tls "$WORK/store" "$WORK"
# The gateways' role may only log in over TLS.
sed -i 's/^host all all 127.0.0.1\/32 scram-sha-256/hostssl all sluice 127.0.0.1\/32 scram-sha-256\nhostnossl all sluice 127.0.0.1\/32 reject\nhost all all 127.0.0.1\/32 scram-sha-256/' "$WORK/store/data/pg_hba.conf"
pg_restart "$WORK/store"
psql -h "$WORK/store" -p "$STORE_PORT" -U postgres -v ON_ERROR_STOP=1 -q <<EOF
CREATE ROLE sluice LOGIN PASSWORD '$PG_PASSWORD';
CREATE DATABASE sluice OWNER sluice;
CREATE DATABASE migrated OWNER sluice;
EOF
pg_start "$WORK/target"
TARGET_PORT=$PGPORT_TEST
psql -h "$WORK/target" -p "$TARGET_PORT" -U postgres -d app -v ON_ERROR_STOP=1 -q <<'EOF'
CREATE TABLE held (id int);
INSERT INTO held VALUES (1), (2);
CREATE TABLE people (id int, email text);
INSERT INTO people SELECT g, 'person' || g || '@example.com' FROM generate_series(1, 200) g;
GRANT ALL ON ALL TABLES IN SCHEMA public TO scram_user;
EOF
STORE_URL="postgres://sluice@localhost:$STORE_PORT/sluice?sslmode=verify-full&sslrootcert=$WORK/ca.crt"
export SLUICE_STORE_PASSWORD=$PG_PASSWORD APP_DB_PASSWORD=$PG_PASSWORD

echo "== sshd target"
mkdir -p "$WORK/sshd"
sshd_start "$WORK/sshd"

# One signing key for both gateways (docs/deploy.md): 32 random bytes, base64.
head -c 32 /dev/urandom | base64 >"$WORK/signing.key"
gateway_config() {   # NAME ADMIN_PORT PG_PORT SSH_PORT STORE
  local name=$1
  mkdir -p "$WORK/$name/state" && chmod 700 "$WORK/$name/state"
  [ "$5" = shared ] && install -m 600 "$WORK/signing.key" "$WORK/$name/state/signing.key"
  {
    echo "listen: { admin: 127.0.0.1:$2, postgres: 127.0.0.1:$3, ssh: 127.0.0.1:$4, http: off, kubernetes: off }"
    echo "state_dir: $WORK/$name/state"
    echo "detectors: [$ROOT/corpora]"
    if [ "$5" = shared ]; then
      echo "store: { url: '$STORE_URL', password_env: SLUICE_STORE_PASSWORD }"
    else
      echo "store: sqlite:$WORK/$name/state/sluice.db"
    fi
    cat <<EOF
connections:
  - name: app-db
    type: postgres
    target: 127.0.0.1:$TARGET_PORT
    options: { sslmode: disable }
    database: app
    credential: { username: scram_user, password_env: APP_DB_PASSWORD }
    access: { groups: [eng] }
    guardrails:
      - { match: '(?i)\\bdrop\\s+table\\b', action: block, message: "DROP TABLE is not allowed here" }
      - { class: delete_without_where, action: review }
    reviews: { approvers: [dba-leads], min_approvals: 1, timeout: 2m }
  - name: box
    type: ssh
    target: 127.0.0.1:$SSHD_PORT
    host_key: "$HOST_KEY"
    credential: { username: $TARGET_USER, private_key_file: $WORK/sshd/gateway_key }
    access: { groups: [eng] }
    guardrails:
      - { match: '^sudo\\b', action: review }
    reviews: { approvers: [sre-leads], min_approvals: 1, timeout: 2m }
EOF
  } >"$WORK/$name.yaml"
}
A_ADMIN=$(free_port); A_PG=$(free_port); A_SSH=$(free_port)
B_ADMIN=$(free_port); B_PG=$(free_port); B_SSH=$(free_port)
gateway_config a "$A_ADMIN" "$A_PG" "$A_SSH" shared
gateway_config b "$B_ADMIN" "$B_PG" "$B_SSH" shared
start_gateway() {   # NAME ADMIN_PORT
  "$SLUICE" serve --config "$WORK/$1.yaml" >>"$WORK/$1.log" 2>&1 &
  PIDS+=($!)
  eval "PID_$1=$!"
  wait_http "http://127.0.0.1:$2/healthz" || { echo "gateway $1 did not start"; cat "$WORK/$1.log"; exit 1; }
}
echo "== two gateways on one store"
start_gateway a "$A_ADMIN"
start_gateway b "$B_ADMIN"
check "gateway A reports the store ok" bash -c "curl -fsS http://127.0.0.1:$A_ADMIN/healthz | grep -q '\"store\":\"ok\"'"
check "gateway B reports the store ok" bash -c "curl -fsS http://127.0.0.1:$B_ADMIN/healthz | grep -q '\"store\":\"ok\"'"
check "each schema step was applied once" test "$(psql -h "$WORK/store" -p "$STORE_PORT" -U postgres -d sluice -Atc 'select count(*) = count(distinct version) from sluice_schema')" = t

ALICE=$("$SLUICE" token --config "$WORK/a.yaml" --user alice --groups eng)
DBA=$("$SLUICE" token --config "$WORK/b.yaml" --user lena --groups dba-leads)
SRE=$("$SLUICE" token --config "$WORK/b.yaml" --user sam --groups sre-leads)
AUDITOR=$("$SLUICE" token --config "$WORK/b.yaml" --user ada --groups admin)
q() { psql "host=127.0.0.1 port=$1 dbname=app-db user=alice password=$2 sslmode=require" -X -A -t -v ON_ERROR_STOP=1; }
SSH_OPTS=(-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR
          -o PreferredAuthentications=keyboard-interactive,password -o PubkeyAuthentication=no -o NumberOfPasswordPrompts=1)
printf '#!/bin/sh\nprintf "%%s\\n" "$SLUICE_TOKEN"\n' >"$WORK/askpass"
chmod +x "$WORK/askpass"
export SSH_ASKPASS=$WORK/askpass SSH_ASKPASS_REQUIRE=force DISPLAY=:0
gssh() { local port=$1 token=$2; shift 2; SLUICE_TOKEN=$token ssh -p "$port" "${SSH_OPTS[@]}" "box@127.0.0.1" "$@"; }
# Checks as functions (check runs them in this shell, where q and gssh exist).
counts_people() { echo 'select count(*) from people' | q "$1" "$ALICE" 2>/dev/null | grep -qx 200; }
answers_one() { echo 'select 1' | q "$1" "$ALICE" 2>/dev/null | grep -qx 1; }
echoes_back() { gssh "$1" "$ALICE" 'echo back' 2>/dev/null | grep -qx back; }

check "psql through A" counts_people "$A_PG"
check "psql through B" counts_people "$B_PG"

OUT=$(echo "drop table people" | q "$A_PG" "$ALICE" 2>&1) && rc=0 || rc=$?
check "a blocked statement on A is refused with its message" bash -c "test $rc != 0 && echo '$OUT' | grep -q 'DROP TABLE is not allowed here'"
check "the block is in the shared control chain (written from A's event loop)" \
  test "$(psql -h "$WORK/store" -p "$STORE_PORT" -U postgres -d sluice -Atc "select count(*) from control_events where kind = 'command.blocked'")" = 1
check "A keeps serving after the block" answers_one "$A_PG"

echo "== a DELETE held on A is released by an approval on B"
( echo "delete from held" | q "$A_PG" "$ALICE" >"$WORK/held.out" 2>&1 && rc=0 || rc=$?; echo $rc >"$WORK/held.rc"; date +%s.%N >"$WORK/held.end" ) &
PIDS+=($!)
RID=$(pending_review "$WORK/b.yaml")
check "the review is pending (seen through B's store)" test -n "$RID"
sleep 0.3
check "the DELETE has not run yet" test ! -e "$WORK/held.rc"
# From the start of the approval on B (the CLI's own round trip included) to psql's end on A.
APPROVED=$(date +%s.%N)
"$SLUICE" reviews approve "$RID" --config "$WORK/b.yaml" --token "$DBA" >/dev/null
wait_file "$WORK/held.end" || true
check "the approved DELETE ran on A" bash -c "test \"\$(cat '$WORK/held.rc' 2>/dev/null)\" = 0"
RELEASE=$(python3 -c "print(round($(cat "$WORK/held.end" 2>/dev/null || echo 99) - $APPROVED, 3))")
echo "      released $RELEASE s after the approval returned on B"
check "A released it within 1 s of the approval on B" python3 -c "import sys; sys.exit(0 if $RELEASE <= 1.0 else 1)"
check "the rows are gone upstream" test "$(psql -h "$WORK/target" -p "$TARGET_PORT" -U postgres -d app -Atc 'select count(*) from held')" = 0

echo "== a denial on B refuses an SSH command held on A"
( gssh "$A_SSH" "$ALICE" "sudo -n true 2>/dev/null; touch $WORK/ssh-ran" >"$WORK/ssh.out" 2>&1 && rc=0 || rc=$?; echo $rc >"$WORK/ssh.rc" ) &
PIDS+=($!)
RID=$(pending_review "$WORK/b.yaml")
check "the SSH command is held for review" test -n "$RID"
"$SLUICE" reviews deny "$RID" --config "$WORK/b.yaml" --token "$SRE" --reason "not today" >/dev/null
wait_file "$WORK/ssh.rc" || true
check "the denied command did not run" test ! -e "$WORK/ssh-ran"
check "ssh ends, telling the user who denied it and why" bash -c "grep -q 'not today' '$WORK/ssh.out' && test -s '$WORK/ssh.rc' && test \"\$(cat '$WORK/ssh.rc')\" != 0"

echo "== a connection added on A is served by B"
"$SLUICE" connections add reports --gateway "http://127.0.0.1:$A_ADMIN" --token "$AUDITOR" --type postgres \
  --target "127.0.0.1:$TARGET_PORT" --database app --username scram_user --password-env APP_DB_PASSWORD --groups eng \
  --option sslmode=disable >/dev/null
ADDED=$(date +%s.%N)
reports_on_b() { psql "host=127.0.0.1 port=$B_PG dbname=reports user=alice password=$ALICE sslmode=require" -X -A -t -c 'select 1' 2>/dev/null | grep -qx 1; }
for _ in $(seq 1 50); do reports_on_b && break; sleep 0.1; done
SERVED=$(python3 -c "print(round($(date +%s.%N) - $ADDED, 2))")
echo "      served by B $SERVED s after the add on A"
check "B serves it within 3 s, without a restart" bash -c "reports_on_b() { psql 'host=127.0.0.1 port=$B_PG dbname=reports user=alice password=$ALICE sslmode=require' -X -A -t -c 'select 1' 2>/dev/null | grep -qx 1; }; reports_on_b && python3 -c 'import sys; sys.exit(0 if $SERVED <= 3 else 1)'"
"$SLUICE" connections remove reports --gateway "http://127.0.0.1:$B_ADMIN" --token "$AUDITOR" >/dev/null
sleep 2.5
check "removed on B, A stops serving it" bash -c "! psql 'host=127.0.0.1 port=$A_PG dbname=reports user=alice password=$ALICE sslmode=require' -X -A -t -c 'select 1' >/dev/null 2>&1"

echo "== B's API lists A's sessions"
A_SESSION=$("$SLUICE" sessions list --config "$WORK/a.yaml" --json | python3 -c 'import json,sys; print(next(s["id"] for s in json.load(sys.stdin) if s["protocol"] == "ssh"))')
check "B's /api/sessions shows the SSH session served by A" bash -c \
  "curl -fsS -H 'Authorization: Bearer $AUDITOR' 'http://127.0.0.1:$B_ADMIN/api/sessions?limit=100' | grep -q '$A_SESSION'"

echo "== kill -9 of A with 20 sessions streaming through it"
python3 - "$WORK/stream.sql" <<'PY'
import sys
with open(sys.argv[1], "w") as out:
    for i in range(400):
        out.write("select id, email from people where id %% 7 = %d;\nselect pg_sleep(0.02);\n" % (i % 7))
PY
for i in $(seq 1 20); do
  ( q "$A_PG" "$ALICE" <"$WORK/stream.sql" >"$WORK/stream-$i.out" 2>&1 && rc=0 || rc=$?; echo $rc >"$WORK/stream-$i.rc" ) &
  PIDS+=($!)
done
sleep 2
OPEN=$(curl -fsS "http://127.0.0.1:$A_ADMIN/healthz" | python3 -c 'import json,sys; print(json.load(sys.stdin)["open_sessions"])')
check "A serves the 20 sessions (open: $OPEN)" test "$OPEN" -ge 20
kill -9 "$PID_a"
wait "$PID_a" 2>/dev/null || true
for i in $(seq 1 20); do wait_file "$WORK/stream-$i.rc" || true; done
CUT=$(for i in $(seq 1 20); do cat "$WORK/stream-$i.rc" 2>/dev/null; done | grep -c '^[1-9]' || true)
check "A's 20 clients lost their connection ($CUT of 20)" test "$CUT" = 20
check "B keeps serving" answers_one "$B_PG"
RECONNECTED=0
for i in $(seq 1 20); do
  echo "select count(*) from people" | q "$B_PG" "$ALICE" 2>/dev/null | grep -qx 200 && RECONNECTED=$((RECONNECTED + 1))
done
check "A's 20 clients reconnect through B ($RECONNECTED of 20)" test "$RECONNECTED" = 20
"$SLUICE" audit verify --config "$WORK/b.yaml" >"$WORK/verify-kill.txt" 2>&1 && rc=0 || rc=$?
check "audit verify passes after the kill (A's cut sessions are unsealed, not broken)" test "$rc" = 0
check "the report lists A's unsealed sessions" bash -c "grep -c '^unsealed: session' '$WORK/verify-kill.txt' | python3 -c 'import sys; sys.exit(0 if int(sys.stdin.read()) >= 20 else 1)'"
# What A committed before the kill is in the store: each cut session has its statements.
RECORDED=$(psql -h "$WORK/store" -p "$STORE_PORT" -U postgres -d sluice -Atc \
  "select count(*) from sessions s where s.ended_at is null and s.kind = 'postgres' and (select count(*) from events e where e.session_id = s.id and e.kind = 'i') >= 2")
check "every cut session's statements up to the kill are in the store ($RECORDED)" test "$RECORDED" -ge 20
start_gateway a "$A_ADMIN"
check "A is back on the same store" answers_one "$A_PG"

echo "== the store stops for 5 s"
pg_stop "$WORK/store"
STOPPED=$(date +%s)
A_HEALTH=$(curl -sS -o /dev/null -w '%{http_code}' "http://127.0.0.1:$A_ADMIN/healthz")
B_HEALTH=$(curl -sS -w '\n%{http_code}' "http://127.0.0.1:$B_ADMIN/healthz")
check "A's /healthz answers 503" test "$A_HEALTH" = 503
check "B's /healthz answers 503 and says the store is unreachable" bash -c "echo '$B_HEALTH' | grep -q 'store_unavailable' && echo '$B_HEALTH' | tail -1 | grep -qx 503"
OUT=$(echo "select 1" | q "$A_PG" "$ALICE" 2>&1) && rc=0 || rc=$?
check "a new session on A is refused with a clear error" bash -c "test $rc != 0 && echo '$OUT' | grep -q 'recording is unavailable'"
OUT=$(gssh "$B_SSH" "$ALICE" true 2>&1) && rc=0 || rc=$?
check "a new SSH session on B is refused" test "$rc" != 0
sleep $(( 5 - ($(date +%s) - STOPPED) > 0 ? 5 - ($(date +%s) - STOPPED) : 0 ))
pg_as_owner "$PG_BIN/pg_ctl" -D "$WORK/store/data" -l "$WORK/store/server.log" -w start >/dev/null
recovered() { for _ in $(seq 1 150); do curl -fsS "$1/healthz" 2>/dev/null | grep -q '"store":"ok"' && return 0; sleep 0.1; done; return 1; }
check "A recovers without a restart" recovered "http://127.0.0.1:$A_ADMIN"
check "B recovers without a restart" recovered "http://127.0.0.1:$B_ADMIN"
check "psql through A works again" counts_people "$A_PG"
check "ssh through B works again" echoes_back "$B_SSH"

echo "== sluice store migrate: an SQLite record into PostgreSQL"
C_ADMIN=$(free_port); C_PG=$(free_port); C_SSH=$(free_port)
gateway_config c "$C_ADMIN" "$C_PG" "$C_SSH" sqlite
start_gateway c "$C_ADMIN"
CAROL=$("$SLUICE" token --config "$WORK/c.yaml" --user carol --groups eng)
echo "select id, email from people where id < 20" | q "$C_PG" "$CAROL" >/dev/null
gssh "$C_SSH" "$CAROL" "echo mail me at jane.doe@example.com" >/dev/null
kill -TERM "$PID_c"; wait "$PID_c" 2>/dev/null || true
MIGRATED_URL="postgres://sluice@localhost:$STORE_PORT/migrated?sslmode=verify-full&sslrootcert=$WORK/ca.crt"
"$SLUICE" store migrate --config "$WORK/c.yaml" --to "$MIGRATED_URL" --password-env SLUICE_STORE_PASSWORD >"$WORK/migrate.txt" 2>&1 && rc=0 || rc=$?
check "store migrate copies the SQLite record ($(grep '^copied' "$WORK/migrate.txt" || echo 'nothing copied'))" bash -c "test $rc = 0 && grep -q '^copied 2 sessions' '$WORK/migrate.txt'"
"$SLUICE" audit verify --config "$WORK/a.yaml" --store "$MIGRATED_URL" --public-key "$WORK/c/state/signing.pub" >"$WORK/verify-migrated.txt" 2>&1 && rc=0 || rc=$?
check "audit verify passes on the migrated record" bash -c "test $rc = 0 && grep -q 'sessions: 2 checked, 2 sealed' '$WORK/verify-migrated.txt'"
"$SLUICE" store migrate --config "$WORK/c.yaml" --to "$MIGRATED_URL" --password-env SLUICE_STORE_PASSWORD >/dev/null 2>&1 && rc=0 || rc=$?
check "migrating into a store that holds a record is refused" test "$rc" != 0

echo "== TLS to the store is verified"
"$SLUICE" audit verify --config "$WORK/b.yaml" --store "postgres://sluice@localhost:$STORE_PORT/sluice?sslmode=verify-full&sslrootcert=$WORK/other-ca.crt" \
  >"$WORK/wrong-ca.txt" 2>&1 && rc=0 || rc=$?
check "a store whose certificate another CA signed is refused (exit $rc)" bash -c "test $rc != 0 && grep -q 'PostgreSQL store unreachable' '$WORK/wrong-ca.txt'"
"$SLUICE" audit verify --config "$WORK/b.yaml" --store "postgres://sluice@localhost:$STORE_PORT/sluice?sslmode=disable" \
  >"$WORK/no-tls.txt" 2>&1 && rc=0 || rc=$?
check "the gateways' role cannot log in without TLS (exit $rc)" test "$rc" != 0

echo "== the shared record"
kill -TERM "$PID_a" "$PID_b"; wait "$PID_a" "$PID_b" 2>/dev/null || true
"$SLUICE" audit verify --config "$WORK/b.yaml" >"$WORK/verify-end.txt" 2>&1 && rc=0 || rc=$?
check "audit verify passes on everything both gateways wrote" test "$rc" = 0
sed 's/^/      /' "$WORK/verify-end.txt" | head -3
CHAIN=$(psql -h "$WORK/store" -p "$STORE_PORT" -U postgres -d sluice -Atc "select count(*) = max(seq) + 1 from control_events")
check "one control chain, no gap, for both gateways" test "$CHAIN" = t
check "no payload in either gateway's log" bash -c "! grep -hE 'person[0-9]+@example.com|jane.doe@example.com|$PG_PASSWORD' '$WORK/a.log' '$WORK/b.log' '$WORK/c.log'"

echo "scale: $pass passed, $fail failed"
[ "$fail" = 0 ]
