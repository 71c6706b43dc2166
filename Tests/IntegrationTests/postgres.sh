#!/usr/bin/env bash
# The Postgres adapter against a real PostgreSQL server (trust, md5 and scram-sha-256 upstream
# auth), with the real psql, pg_dump and psycopg 3 (PyPI, in a venv this script makes).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
SLUICE=${SLUICE:-$ROOT/.build/debug/sluice}
VENV=$ROOT/.build/venv-integration
WORK=$(mktemp -d /tmp/sluice-pg.XXXXXX)
chmod 755 "$WORK"
source "$ROOT/Tests/IntegrationTests/pg-server.sh"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  pg_stop "$WORK/pg"
  rm -rf "$WORK"
}
trap cleanup EXIT

source "$ROOT/Tests/IntegrationTests/lib.sh"

if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import psycopg' 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q 'psycopg[binary]'
fi
# Debian 12's psql is 15, which has no \bind. The `pgserver` wheel on PyPI carries a PostgreSQL 16
# build; only its psql (and the libpq beside it) is used, as a second real client.
PG16=$("$VENV/bin/python" -c 'import importlib.util as u, os; s = u.find_spec("pgserver"); print(os.path.dirname(s.origin) if s else "")' 2>/dev/null || true)
if [ -z "$PG16" ]; then
  "$VENV/bin/pip" install -q --no-deps 'pgserver==0.1.4'
  PG16=$("$VENV/bin/python" -c 'import importlib.util as u, os; print(os.path.dirname(u.find_spec("pgserver").origin))')
fi
psql16() { LD_LIBRARY_PATH="$PG16/../pgserver.libs" "$PG16/pginstall/bin/psql" "$@"; }

echo "== PostgreSQL cluster"
pg_start "$WORK/pg"
# TLS on the server, with a certificate for localhost from a throw-away CA.
pg_tls "$WORK/pg" "$WORK"
sed -i 's/^host all scram_user/hostssl all scram_user/' "$WORK/pg/data/pg_hba.conf"
pg_restart "$WORK/pg"
psql -h "$WORK/pg" -p "$PGPORT_TEST" -U postgres -d app -v ON_ERROR_STOP=1 -q <<'EOF'
CREATE TABLE customers (id int PRIMARY KEY, name text, email text, card text, ssn text, iban text, note text);
INSERT INTO customers VALUES
 (1, 'Jane Doe', 'jane.doe@example.com', '4111 1111 1111 1111', '268-45-8731', 'DE89370400440532013000', 'call +1 415 555 0132'),
 (2, 'John Roe', 'john.roe@example.org', '5500-0000-0000-0004', '219-09-9999', 'GB82WEST12345698765432', 'order 4111111111111112 is not a card'),
 (3, 'Ann Poe', 'ann@example.net', '378282246310005', '536-22-1234', 'FR1420041010050500013M02606', 'ok');
CREATE TABLE audit_keep (id int);
GRANT ALL ON ALL TABLES IN SCHEMA public TO trust_user, md5_user, scram_user;
SELECT lo_from_bytea(424242, convert_to('jane.doe@example.com 4111 1111 1111 1111', 'UTF8'));
GRANT SELECT ON LARGE OBJECT 424242 TO scram_user;
EOF

ADMIN_PORT=$(free_port)
PG_PORT=$(free_port)
export APP_DB_PASSWORD=$PG_PASSWORD
cat >"$WORK/sluice.yaml" <<EOF
listen: { admin: 127.0.0.1:$ADMIN_PORT, postgres: 127.0.0.1:$PG_PORT, ssh: off, http: off, kubernetes: off }
state_dir: $WORK/state
detectors: [$ROOT/corpora]
limits: { startup_timeout: 3s, max_message_bytes: 8388608, unauthenticated_per_source: 45, failed_logins_per_source: 20 }
# psql 16 from the pgserver wheel (the \bind checks) has no TLS: this gateway allows plaintext
# logins; the default (TLS required) is checked on a second gateway below.
postgres: { require_tls: false }
connections:
EOF
for method in trust md5 scram scram-wrong-ca; do
  user=${method%%-*}_user
  case $method in
    scram) sslmode=verify-full; ca=$WORK/ca.crt ;;
    scram-wrong-ca) sslmode=verify-full; ca=$WORK/other-ca.crt ;;
    *) sslmode=disable; ca=$WORK/ca.crt ;;
  esac
  cat >>"$WORK/sluice.yaml" <<EOF
  - name: app-$method
    type: postgres
    target: localhost:$PGPORT_TEST
    options: { sslmode: $sslmode }
    ca_file: $ca
    database: app
    credential: { username: $user, password_env: APP_DB_PASSWORD }
    access: { groups: [eng, dpo] }
    masking: { profile: default, unmasked_groups: [dpo], columns: { "customers.name": redact } }
    guardrails:
      - { match: '(?i)\\bdrop\\s+table\\b', action: block, message: "DROP TABLE is not allowed here" }
      - { class: delete_without_where, action: review }
    reviews: { approvers: [dba-leads], min_approvals: 1, timeout: 2m }
EOF
done
# The hardened rule set of examples/sluice.yaml (docs/postgres.md), on its own connection.
cat >>"$WORK/sluice.yaml" <<EOF
  - name: app-hard
    type: postgres
    target: localhost:$PGPORT_TEST
    options: { sslmode: verify-full }
    ca_file: $WORK/ca.crt
    database: app
    credential: { username: scram_user, password_env: APP_DB_PASSWORD }
    access: { groups: [eng] }
    masking: { profile: default }
EOF
python3 - "$ROOT/examples/sluice.yaml" >>"$WORK/sluice.yaml" <<'PY'
import sys
lines = open(sys.argv[1]).read().splitlines()
start = next(i for i, l in enumerate(lines) if l.strip().startswith("- name: app-db"))
inside = False
for line in lines[start + 1:]:
    if line.strip().startswith("guardrails:"):
        inside = True
        print("    guardrails:")
        continue
    if inside and not line.strip().startswith("- {"):
        break
    if inside:
        print(line)
print("    reviews: { approvers: [dba-leads], min_approvals: 1, timeout: 2m }")
PY
"$SLUICE" serve --config "$WORK/sluice.yaml" >"$WORK/serve.log" 2>&1 &
GATEWAY=$!
PIDS+=("$GATEWAY")
wait_http "http://127.0.0.1:$ADMIN_PORT/healthz" || { cat "$WORK/serve.log"; exit 1; }
wait_port "$PG_PORT"

ALICE=$("$SLUICE" token --config "$WORK/sluice.yaml" --user alice --groups eng)
DPO=$("$SLUICE" token --config "$WORK/sluice.yaml" --user dana --groups dpo)
LEAD=$("$SLUICE" token --config "$WORK/sluice.yaml" --user lena --groups dba-leads)
dsn() { echo "host=127.0.0.1 port=$PG_PORT dbname=$1 user=${3:-alice} password=$2 sslmode=${4:-require}"; }
q() { psql "$(dsn "$@")" -X -A -t -v ON_ERROR_STOP=1; }

echo "== masking through psql, each upstream auth method"
for method in trust md5 scram; do
  OUT=$(echo "select email, card, ssn, iban, note from customers order by id" | q app-$method "$ALICE" 2>&1 || true)
  check "$method: psql connects and gets rows" bash -c "echo '$OUT' | grep -q '|'"
  check "$method: no email, card, SSN or IBAN passes" bash -c "! echo '$OUT' | grep -Eq 'jane.doe@example.com|4111 1111 1111 1111|268-45-8731|DE89370400440532013000|378282246310005'"
done
OUT=$(echo "select name, email, note from customers where id = 2" | q app-scram "$ALICE")
check "column rule redacts customers.name" bash -c "echo '$OUT' | grep -q '^\[NAME\]|'"
check "Luhn-invalid order number is kept" bash -c "echo '$OUT' | grep -q 4111111111111112"
OUT=$(echo "select email, ssn from customers where id = 1" | q app-scram "$DPO")
check "dpo sees data unmasked" test "$OUT" = "jane.doe@example.com|268-45-8731"
OUT=$(echo "select email from customers where id = 1" | psql "$(dsn app-scram "$ALICE" alice require)" -X -A -t 2>&1 || true)
check "TLS to the gateway (sslmode=require) works and masks" bash -c "echo '$OUT' | grep -q '\[EMAIL\]'"
# The default: logins over TLS only. A second gateway on the same configuration without the opt-out.
TLS_ADMIN=$(free_port)
TLS_PG=$(free_port)
sed -e '/^postgres: { require_tls: false }/d' -e "s#admin: 127.0.0.1:$ADMIN_PORT#admin: 127.0.0.1:$TLS_ADMIN#" \
    -e "s#postgres: 127.0.0.1:$PG_PORT#postgres: 127.0.0.1:$TLS_PG#" -e "s#state_dir: $WORK/state#state_dir: $WORK/state-tls#" \
    "$WORK/sluice.yaml" >"$WORK/tls.yaml"
"$SLUICE" serve --config "$WORK/tls.yaml" >"$WORK/serve-tls.log" 2>&1 &
TLS_GATEWAY=$!
PIDS+=("$TLS_GATEWAY")
wait_port "$TLS_PG" || cat "$WORK/serve-tls.log"
TLS_TOKEN=$("$SLUICE" token --config "$WORK/tls.yaml" --user alice --groups eng)
OUT=$(echo "select 1" | psql "host=127.0.0.1 port=$TLS_PG dbname=app-scram user=alice password=$TLS_TOKEN sslmode=disable" -X -A -t 2>&1 || true)
check "by default a plaintext login (sslmode=disable) is refused: the token is a password" \
  bash -c "echo '$OUT' | grep -q 'requires TLS for logins' && echo '$OUT' | grep -q 'sslmode=require'"
OUT=$(echo "select email from customers where id = 1" | psql "host=127.0.0.1 port=$TLS_PG dbname=app-scram user=alice password=$TLS_TOKEN sslmode=require" -X -A -t 2>&1 || true)
check "and a TLS login works and masks" test "$OUT" = "[EMAIL]"
kill -TERM "$TLS_GATEWAY"; wait "$TLS_GATEWAY" 2>/dev/null || true

OUT=$(echo "select ssl from pg_stat_ssl where pid = pg_backend_pid()" | q app-scram "$ALICE" 2>&1)
check "upstream leg uses TLS (verify-full against the CA, pg_hba hostssl)" test "$OUT" = "t"
OUT=$(echo "select 1" | q app-scram-wrong-ca "$ALICE" 2>&1 || true)
check "a server certificate from another CA is refused" bash -c "echo '$OUT' | grep -q 'could not reach the database'"

echo "== bad tokens and access"
OUT=$(echo "select 1" | q app-scram "not-a-token" 2>&1 || true)
check "bad token refused with 28P01-style message" bash -c "echo '$OUT' | grep -qi 'authentication failed'"
OUTSIDER=$("$SLUICE" token --config "$WORK/sluice.yaml" --user olga --groups sales)
OUT=$(echo "select 1" | q app-scram "$OUTSIDER" 2>&1 || true)
check "user outside access groups refused" bash -c "echo '$OUT' | grep -q 'may not use app-scram'"
OUT=$(echo "select 1" | q no-such-db "$ALICE" 2>&1 || true)
check "unknown connection refused" bash -c "echo '$OUT' | grep -q 'no connection named'"

echo "== guardrails"
OUT=$(echo "DROP TABLE customers" | q app-scram "$ALICE" 2>&1 || true)
check "DROP TABLE blocked with its message" bash -c "echo '$OUT' | grep -q 'DROP TABLE is not allowed here'"
N=$(echo "select count(*) from customers" | q app-scram "$DPO")
check "table still there" test "$N" = 3
OUT=$(printf '/* drop table customers */ select 1;\nselect %s;\n' "'drop table customers'" | q app-scram "$ALICE" 2>&1)
check "comments and strings are not DROPs" bash -c "echo '$OUT' | grep -q 'drop table customers'"
OUT=$(echo "select 1; drop table customers" | q app-scram "$ALICE" 2>&1 || true)
check "select 1; drop table x is blocked" bash -c "echo '$OUT' | grep -q 'not allowed'"
OUT=$(printf 'select 42 as answer\n\\g\ndrop table customers;\nselect 43 as again;\n' | psql "$(dsn app-scram "$ALICE")" -X -A -t 2>&1 || true)
check "the session stays usable after a block" bash -c "echo '$OUT' | grep -q 43"

echo "== every message type is governed (hand-made protocol messages)"
"$VENV/bin/python" "$ROOT/Tests/IntegrationTests/pg_raw.py" "$PG_PORT" app-scram "$ALICE" >"$WORK/raw.out" 2>&1 && rc=0 || rc=$?
sed 's/^/      /' "$WORK/raw.out"
check "ParameterStatus, RowDescription, error fields, notifications, FunctionCall and unknown types are governed" test "$rc" = 0
rm -f "$WORK/lo.out"
OUT=$(psql "$(dsn app-scram "$ALICE")" -X -c "\\lo_export 424242 '$WORK/lo.out'" 2>&1 || true)
check "psql \\lo_export (fast path) is refused with a pointer to SQL" bash -c "echo '$OUT' | grep -q 'fast-path function calls are not allowed'"
check "no raw large-object bytes reach the user's file" bash -c "! grep -qs 'jane.doe@example.com' '$WORK/lo.out'"
OUT=$(echo "select convert_from(lo_get(424242), 'UTF8')" | q app-scram "$ALICE" 2>&1)
check "lo_get through SQL is masked" bash -c "echo '$OUT' | grep -q '\[EMAIL\]' && ! echo '$OUT' | grep -q 'jane.doe'"
"$SLUICE" sessions list --config "$WORK/sluice.yaml" --json | python3 -c 'import json,sys; [print(s["id"]) for s in json.load(sys.stdin) if s["user"]=="alice"]' >"$WORK/alice-sessions"
: >"$WORK/alice-records"
while read -r id; do "$SLUICE" sessions show "$id" --config "$WORK/sluice.yaml" >>"$WORK/alice-records"; done <"$WORK/alice-sessions"
check "the record holds the refused FunctionCall" grep -q 'function_call' "$WORK/alice-records"
check "the record holds no raw value from these paths" bash -c "! grep -q 'jane.doe@example.com' '$WORK/alice-records'"

echo "== hardened rules (examples/sluice.yaml) on app-hard"
hard() { echo "$1" | psql "$(dsn app-hard "$ALICE")" -X -A -t 2>&1 || true; }
OUT=$(hard 'DO $$ BEGIN EXECUTE '"'"'COPY (select 1) TO PROGRAM '"''"'id'"''"''"'"'; END $$')
check "DO block is blocked (procedural)" bash -c "echo '$OUT' | grep -q 'run code the gateway cannot read'"
OUT=$(hard 'create function f() returns int language plpgsql as $$ begin return 1; end $$')
check "CREATE FUNCTION is blocked (procedural)" bash -c "echo '$OUT' | grep -q 'run code the gateway cannot read'"
OUT=$(hard "copy (select 1) to program 'id'")
check "COPY ... TO PROGRAM is blocked" bash -c "echo '$OUT' | grep -q 'runs a shell command'"
OUT=$(hard "select length(pg_read_file('postgresql.conf'))")
check "pg_read_file is blocked" bash -c "echo '$OUT' | grep -q 'server file functions'"
OUT=$(hard "ALTER SYSTEM SET work_mem = '8MB'")
check "ALTER SYSTEM is blocked" bash -c "echo '$OUT' | grep -q 'ALTER SYSTEM is not allowed'"
cat >"$WORK/scs.sql" <<'SQL'
SET standard_conforming_strings = off;
select 'a\' , $$' ; drop table customers; -- $$;
SQL
psql "$(dsn app-hard "$ALICE")" -X -A -t -f "$WORK/scs.sql" >"$WORK/scs.out" 2>&1 || true
check "a DROP hidden by standard_conforming_strings = off is blocked" grep -q 'DROP TABLE is not allowed here' "$WORK/scs.out"
# The same text as one Query message (psql splits it itself): the gateway must read it as the server does.
"$VENV/bin/python" "$ROOT/Tests/IntegrationTests/pg_raw.py" "$PG_PORT" app-hard "$ALICE" scs >"$WORK/scs-raw.out" 2>&1 && rc=0 || rc=$?
sed 's/^/      /' "$WORK/scs-raw.out"
check "the same DROP in one Query message is blocked too" test "$rc" = 0

N=$(echo "select count(*) from customers" | q app-scram "$DPO")
check "customers still there" test "$N" = 3
OUT=$(hard "select email from customers where id = 1")
check "plain reads still run, masked" test "$OUT" = "[EMAIL]"
( hard "WITH x AS (DELETE FROM audit_keep RETURNING *) SELECT count(*) FROM x" >"$WORK/cte.out"; echo done >"$WORK/cte.rc" ) &
PIDS+=($!)
RID=$(pending_review "$WORK/sluice.yaml")
check "a DELETE inside a CTE is held for review" test -n "$RID"
[ -n "$RID" ] && "$SLUICE" reviews deny "$RID" --config "$WORK/sluice.yaml" --token "$LEAD" --reason "cte" >/dev/null
wait_file "$WORK/cte.rc" || true
check "the CTE was refused with the reason" grep -q 'denied by lena: cte' "$WORK/cte.out"
( printf 'PREPARE p AS DELETE FROM audit_keep;\nEXECUTE p;\n' | psql "$(dsn app-hard "$ALICE")" -X -A -t >"$WORK/prep.out" 2>&1; echo done >"$WORK/prep.rc" ) &
PIDS+=($!)
RID=$(pending_review "$WORK/sluice.yaml")
check "PREPARE ... AS DELETE without WHERE is held for review" test -n "$RID"
[ -n "$RID" ] && "$SLUICE" reviews approve "$RID" --config "$WORK/sluice.yaml" --token "$LEAD" >/dev/null
sleep 0.5
RID=$(pending_review "$WORK/sluice.yaml")
check "EXECUTE of it is held for review again" test -n "$RID"
[ -n "$RID" ] && "$SLUICE" reviews deny "$RID" --config "$WORK/sluice.yaml" --token "$LEAD" --reason "exec" >/dev/null
wait_file "$WORK/prep.rc" || true
check "the EXECUTE was refused with the reason" grep -q 'denied by lena: exec' "$WORK/prep.out"

echo "== review: DELETE without WHERE"
( echo "delete from audit_keep" | q app-scram "$ALICE" >"$WORK/review1.out" 2>&1; echo $? >"$WORK/review1.rc" ) &
PIDS+=($!)
RID=$(pending_review "$WORK/sluice.yaml")
check "a pending review appears" test -n "$RID"
"$SLUICE" reviews approve "$RID" --config "$WORK/sluice.yaml" --token "$LEAD" >/dev/null
wait_file "$WORK/review1.rc" || true
check "approved DELETE runs" bash -c "grep -q 'DELETE 0' '$WORK/review1.out' || grep -q '^$' '$WORK/review1.out'; test \"\$(cat '$WORK/review1.rc')\" = 0"
( echo "delete from audit_keep" | q app-scram "$ALICE" >"$WORK/review2.out" 2>&1; echo $? >"$WORK/review2.rc" ) &
PIDS+=($!)
RID=$(pending_review "$WORK/sluice.yaml")
"$SLUICE" reviews deny "$RID" --config "$WORK/sluice.yaml" --token "$LEAD" --reason "not now" >/dev/null
wait_file "$WORK/review2.rc" || true
check "denied DELETE fails with the reason" bash -c "grep -q 'denied by lena: not now' '$WORK/review2.out'"
( echo "delete from audit_keep" | timeout 3 psql "$(dsn app-scram "$ALICE")" -X -v ON_ERROR_STOP=1 >/dev/null 2>&1 ) &
PIDS+=($!)
RID=$(pending_review "$WORK/sluice.yaml")
GAVE_UP=""
for _ in $(seq 1 60); do
  GAVE_UP=$("$SLUICE" reviews list --config "$WORK/sluice.yaml" --json | python3 -c '
import json, sys
for r in json.load(sys.stdin):
    if r["id"] == sys.argv[1] and "withdrawn" in json.dumps(r):
        print(r["id"])' "$RID")
  [ -n "$GAVE_UP" ] && break
  sleep 0.2
done
check "a held DELETE whose psql gave up is withdrawn, not left pending" test -n "$RID" -a -n "$GAVE_UP"

echo "== extended protocol from psql (\\bind ... \\g) and pgbench -M prepared"
PSQL16_MAJOR=$(psql16 --version | sed -n 's/.* \([0-9][0-9]*\)\..*/\1/p')
check "a psql 16 client is available (pgserver wheel)" test "${PSQL16_MAJOR:-0}" -ge 16
OUT=$(printf 'select email, ssn from customers where id = $1 \\bind 1 \\g\n' | psql16 "$(dsn app-scram "$ALICE" alice disable)" -X -A -t 2>&1)
check "\\bind ... \\g result masked" test "$OUT" = "[EMAIL]|[SSN]"
printf 'drop table customers \\bind \\g\nselect count(*) from customers \\bind \\g\n' | psql16 "$(dsn app-scram "$ALICE" alice disable)" -X -A -t >"$WORK/bind-block.out" 2>&1 || true
check "\\bind of a blocked statement is refused" grep -q 'not allowed' "$WORK/bind-block.out"
check "the session goes on after the refused \\bind" grep -qx 3 "$WORK/bind-block.out"
printf '\\set id random(1, 3)\nselect email, ssn from customers where id = :id;\n' >"$WORK/bench.sql"
PGPASSWORD=$ALICE pgbench -h 127.0.0.1 -p "$PG_PORT" -U alice -n -M prepared -c 2 -t 50 -f "$WORK/bench.sql" app-scram >"$WORK/pgbench.out" 2>&1 && rc=0 || rc=$?
check "pgbench -M prepared through the gateway" bash -c "test $rc = 0 && grep -q 'number of transactions actually processed: 100' '$WORK/pgbench.out'"

echo "== psycopg 3: prepared statements, server-side cursors, COPY, cancel"
OUT=$("$VENV/bin/python" "$ROOT/Tests/IntegrationTests/pg_client.py" "$(dsn app-scram "$ALICE")" 2>&1) && rc=0 || rc=$?
echo "$OUT" | sed 's/^/      /'
check "psycopg checks pass" test "$rc" = 0

echo "== pg_dump --data-only"
pg_dump "$(dsn app-scram "$ALICE")" --data-only --table=customers >"$WORK/dump.sql" 2>"$WORK/dump.err" && rc=0 || rc=$?
check "pg_dump through the gateway succeeds" test "$rc" = 0
check "pg_dump data is masked" bash -c "grep -q '\[EMAIL\]' '$WORK/dump.sql' && ! grep -q 'jane.doe@example.com' '$WORK/dump.sql'"

echo "== malformed input"
python3 - "$PG_PORT" <<'EOF'
import os, socket, struct, sys
port = int(sys.argv[1])
cases = [b"\x00\x00\x00\x08\x00\x00\x00\x00", b"\xff" * 64, struct.pack("!ii", 100000, 196608), os.urandom(512),
         struct.pack("!ii", 9, 196608) + b"x"]
for payload in cases:
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(payload)
    try:
        s.shutdown(socket.SHUT_WR)
        while s.recv(4096):
            pass
    except OSError:
        pass
    s.close()
print("sent", len(cases))
EOF
N=$(echo "select count(*) from customers" | q app-scram "$DPO")
check "gateway keeps serving after garbage" test "$N" = 3

echo "== unauthenticated connections time out (limits.startup_timeout: 3s) and are bounded per source (45)"
python3 - "$PG_PORT" >"$WORK/idle.out" 2>&1 <<'EOF' && rc=0 || rc=$?
import socket, ssl, struct, sys, time
port = int(sys.argv[1])
# 40 idle sockets (nothing sent), then 10 that stop after the startup packet, at the password
# prompt: 5 of those fit under limits.unauthenticated_per_source (45), 5 are refused at once.
idle = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(40)]
time.sleep(0.5)
startup = b"user\x00alice\x00database\x00app-scram\x00\x00"
context = ssl.create_default_context()
context.check_hostname = False
context.verify_mode = ssl.CERT_NONE
stuck, refused = [], 0
for _ in range(10):   # TLS as the gateway requires, the startup packet, then silence
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(struct.pack("!ii", 8, 80877103))
    answer = s.recv(1)
    if answer == b"E":
        rest = s.recv(4096)
        if b"C53300" in rest and b"still logging in" in rest:
            refused += 1
        s.close()
        continue
    assert answer == b"S", answer
    s = context.wrap_socket(s)
    s.sendall(struct.pack("!ii", 8 + len(startup), 196608) + startup)
    stuck.append(s)
started = time.monotonic()
timed_out = 0
for s in idle + stuck:
    data = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    if b"C57014" in data:
        timed_out += 1
    s.close()
elapsed = time.monotonic() - started
print("closed all %d after %.1f s, %d with 57014; %d refused at once with 53300" % (len(idle) + len(stuck), elapsed, timed_out, refused))
sys.exit(0 if elapsed < 8 and timed_out == 45 and refused == 5 else 1)
EOF
sed 's/^/      /' "$WORK/idle.out"
check "45 connections that never log in are closed at the deadline with 57014, 5 over the per-source limit refused" test "$rc" = 0
N=$(echo "select count(*) from customers" | q app-scram "$DPO")
check "and the gateway keeps serving" test "$N" = 3

echo "== failed logins are throttled per source and recorded as counts (limits.failed_logins_per_source: 20)"
AUDITOR=$("$SLUICE" token --config "$WORK/sluice.yaml" --user aude --groups auditor)
control_count() { curl -fsS -H "Authorization: Bearer $AUDITOR" "http://127.0.0.1:$ADMIN_PORT/api/audit/control" | grep -o "\"kind\" *: *\"$1\"" | wc -l; }
FAILED_BEFORE=$(control_count login.failed)
for attempt in $(seq 1 60); do echo "select 1" | q app-scram "bad-token-$attempt" >>"$WORK/throttle.out" 2>&1 || true; done
FAILED_AFTER=$(control_count login.failed)
THROTTLED=$(control_count login.throttled)
echo "      60 bad logins: $(grep -c 'authentication failed' "$WORK/throttle.out") checked, $(grep -c 'too many failed logins' "$WORK/throttle.out") refused unchecked; control events: $((FAILED_AFTER - FAILED_BEFORE)) login.failed, $THROTTLED login.throttled"
check "after 20 failures the source is refused before its token is checked" grep -q 'too many failed logins from this address' "$WORK/throttle.out"
check "at most 20 of the 60 bad tokens were checked" test "$(grep -c 'authentication failed' "$WORK/throttle.out")" -le 20
check "the 60 attempts are a handful of control events, not 60" test $((FAILED_AFTER - FAILED_BEFORE + THROTTLED)) -le 4
check "the lockout is a control event with its count" test "$THROTTLED" -ge 1
sleep 6
OUT=$(echo "select 1" | q app-scram "$ALICE" 2>&1 || true)
check "a valid login from the same address works once the 5 s lockout ends" test "$OUT" = 1

echo "== memory stays flat over large values (issue 14, finding 2)"
rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$GATEWAY/status"; }
big="select repeat('jane.doe@example.com ', 50000) from generate_series(1,40)"
for run in 1 2; do echo "$big" | q app-trust "$ALICE" | wc -c >"$WORK/big.out"; done
BEFORE=$(rss_kib)
for run in 1 2 3; do echo "$big" | q app-trust "$ALICE" | wc -c >"$WORK/big.out"; done
printf '%s;\n%s;\n%s;\n' "$big" "$big" "$big" | q app-trust "$ALICE" | wc -c >"$WORK/big3.out"
AFTER=$(rss_kib)
echo "      RSS after 2 runs of 40 x 1 MB values: $BEFORE KiB; after 3 more on new connections and 3 in one session: $AFTER KiB (each run sends $(cat "$WORK/big.out") masked bytes)"
check "six more 40 MB results add less than 24 MB" test $((AFTER - BEFORE)) -lt 24576
echo "select length(repeat('x', 10000000))" | q app-trust "$ALICE" >"$WORK/len.out" 2>&1 || true
check "a large value computed upstream is fine" grep -qx 10000000 "$WORK/len.out"
echo "select repeat('x', 10000000)" | q app-trust "$ALICE" >"$WORK/huge.out" 2>&1 && rc=0 || rc=$?
sed 's/^/      /' "$WORK/huge.out" | cut -c1-160 | head -3
check "a 10 MB value over limits.max_message_bytes (8 MiB) ends the statement with a clear error" \
  grep -q 'could not be masked (pg_message_too_large)' "$WORK/huge.out"
check "the three in one session all came back" test "$(cat "$WORK/big3.out")" = $((3 * $(cat "$WORK/big.out")))
echo "$big" | q app-trust "$ALICE" | grep -c 'jane.doe@example.com' >"$WORK/leak.out" || true
check "every result was masked" test "$(cat "$WORK/leak.out")" = 0

echo "== the record"
"$SLUICE" audit verify --config "$WORK/sluice.yaml" >"$WORK/verify.out" 2>&1 && rc=0 || rc=$?
check "audit verify passes" test "$rc" = 0
SID=$("$SLUICE" sessions list --config "$WORK/sluice.yaml" --json | python3 -c 'import json,sys; print([s["id"] for s in json.load(sys.stdin) if s["user"]=="alice"][0])')
"$SLUICE" sessions show "$SID" --config "$WORK/sluice.yaml" >"$WORK/session.json"
check "the record holds statements" bash -c "grep -q '\"kind\" : \"i\"' '$WORK/session.json'"
for id in $(cat "$WORK/alice-sessions"); do
  "$SLUICE" sessions replay "$id" --config "$WORK/sluice.yaml" --no-wait >"$WORK/replay.out" 2>&1 || true
  grep -q 'rows\?)' "$WORK/replay.out" && break
done
check "sessions replay shows each statement, then its result and row count on lines of their own" python3 -c '
import re, sys
text = open(sys.argv[1], encoding="utf-8", errors="replace").read()
sys.exit(0 if re.search(r"\x1b\[1m=> [^\n]+\x1b\[0m\n(?:[^\n]*\n)*?\([A-Z]+[^\n]*; \d+ rows?\)\n", text) else 1)' "$WORK/replay.out"
check "the record never holds raw PII" bash -c "! grep -rqa 'jane.doe@example.com' '$WORK/state/'"

echo "== SIGKILL while sessions are writing"
for worker in 1 2 3 4; do
  ( for i in $(seq 1 2000); do echo "select email, ssn, note, pg_sleep(0.005) from customers;"; done | q app-scram "$ALICE" >/dev/null 2>&1 ) &
  PIDS+=($!)
done
sleep 2
kill -9 "$GATEWAY"
wait "$GATEWAY" 2>/dev/null || true
sleep 0.5
"$SLUICE" audit verify --config "$WORK/sluice.yaml" >"$WORK/verify2.out" 2>&1 && rc=0 || rc=$?
sed 's/^/      /' "$WORK/verify2.out" | grep -v '^      unsealed'
check "audit verify passes after SIGKILL with open sessions" test "$rc" = 0
check "the killed sessions are reported unsealed" grep -q '^unsealed: session' "$WORK/verify2.out"

echo "postgres: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
