#!/usr/bin/env bash
# The web console in a real browser: headless Chromium (Debian's chromium and chromium-driver,
# installed when missing) driven by selenium (PyPI, in a venv). A real PostgreSQL and a real sshd
# provide the sessions: sign in, play a recorded SSH session, approve a held psql statement from
# the reviews inbox and see it complete. With --screenshots DIR the page screenshots are kept.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
SLUICE=${SLUICE:-$ROOT/.build/debug/sluice}
VENV=$ROOT/.build/venv-integration
SHOTS=""
[ "${1:-}" = "--screenshots" ] && SHOTS=$2
WORK=$(mktemp -d /tmp/sluice-console.XXXXXX)
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

need=()
[ -x /usr/bin/chromium ] || need+=(chromium)
[ -x /usr/bin/chromedriver ] || need+=(chromium-driver)
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
if [ ${#need[@]} -gt 0 ]; then
  echo "console: installing ${need[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
mkdir -p /run/sshd
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import selenium' 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q 'selenium>=4.20,<5'
fi

echo "== PostgreSQL and sshd"
pg_start "$WORK/pg"
psql -h "$WORK/pg" -p "$PGPORT_TEST" -U postgres -d app -v ON_ERROR_STOP=1 -q <<'SQL'
CREATE TABLE customers (id int PRIMARY KEY, name text, email text, ssn text);
INSERT INTO customers VALUES (1, 'Jane Doe', 'jane.doe@example.com', '268-45-8731');
CREATE TABLE audit_keep (id int);
GRANT ALL ON ALL TABLES IN SCHEMA public TO scram_user;
SQL
ssh-keygen -q -t ed25519 -N '' -f "$WORK/host" -C host
ssh-keygen -q -t ed25519 -N '' -f "$WORK/key" -C key
cp "$WORK/key.pub" "$WORK/authorized_keys"
SSHD_PORT=$(free_port)
printf 'Port %s\nListenAddress 127.0.0.1\nHostKey %s\nAuthorizedKeysFile %s\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nStrictModes no\nUsePAM no\nPidFile %s\n' \
  "$SSHD_PORT" "$WORK/host" "$WORK/authorized_keys" "$WORK/sshd.pid" >"$WORK/sshd_config"
/usr/sbin/sshd -D -e -f "$WORK/sshd_config" 2>"$WORK/sshd.log" &
PIDS+=($!)
wait_port "$SSHD_PORT"

ADMIN_PORT=$(free_port)
PG_PORT=$(free_port)
SSH_PORT=$(free_port)
export APP_DB_PASSWORD=$PG_PASSWORD
cat >"$WORK/sluice.yaml" <<YAML
listen: { admin: 127.0.0.1:$ADMIN_PORT, postgres: 127.0.0.1:$PG_PORT, ssh: 127.0.0.1:$SSH_PORT, http: off, kubernetes: off }
state_dir: $WORK/state
detectors: [$ROOT/corpora]
connections:
  - name: app-db
    type: postgres
    target: 127.0.0.1:$PGPORT_TEST
    database: app
    credential: { username: scram_user, password_env: APP_DB_PASSWORD }
    access: { groups: [eng] }
    guardrails:
      - { match: '(?i)\\bdrop\\s+table\\b', action: block, message: "DROP TABLE is not allowed here" }
      - { class: delete_without_where, action: review }
    reviews: { approvers: [dba-leads], timeout: 2m }
  - name: box
    type: ssh
    target: 127.0.0.1:$SSHD_PORT
    host_key: "$(cut -d' ' -f1,2 "$WORK/host.pub")"
    credential: { username: $(id -un), private_key_file: $WORK/key }
    access: { groups: [eng] }
YAML
"$SLUICE" serve --config "$WORK/sluice.yaml" >"$WORK/serve.log" 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:$ADMIN_PORT/healthz" || { cat "$WORK/serve.log"; exit 1; }
wait_port "$SSH_PORT"
ALICE=$("$SLUICE" token --config "$WORK/sluice.yaml" --user alice --groups eng)

echo "== the dev sign-in needs a token, not a chosen name"
SIGNIN=$(curl -fsS -c "$WORK/jar" "http://127.0.0.1:$ADMIN_PORT/console/signin")
NONCE=$(echo "$SIGNIN" | sed -n 's/.*name="nonce" value="\([^"]*\)".*/\1/p')
code=$(curl -s -o "$WORK/forged.html" -w '%{http_code}' -b "$WORK/jar" -c "$WORK/jar2" \
  --data-urlencode "nonce=$NONCE" --data-urlencode "user=lena" --data-urlencode "groups=dba-leads,admin" \
  "http://127.0.0.1:$ADMIN_PORT/console/signin/dev")
check "a free-form user/groups post is refused (400)" test "$code" = 400
check "and sets no console session cookie" bash -c "! grep -q sluice_console '$WORK/jar2'"
FORGED=$(python3 - <<'PY'
import base64, json
b = lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()
print(b({"alg": "EdDSA", "typ": "JWT"}) + "." + b({"iss": "sluice-dev", "aud": "sluice", "preferred_username": "lena",
      "groups": ["dba-leads", "admin"], "exp": 4102444800}) + "." + "A" * 86)
PY
)
code=$(curl -s -o /dev/null -w '%{http_code}' -b "$WORK/jar" -c "$WORK/jar3" --data-urlencode "nonce=$NONCE" \
  --data-urlencode "token=$FORGED" "http://127.0.0.1:$ADMIN_PORT/console/signin/dev")
check "a token not signed with the gateway's key is refused (401)" test "$code" = 401
LENA=$("$SLUICE" token --config "$WORK/sluice.yaml" --user lena --groups dba-leads)
code=$(curl -s -o /dev/null -w '%{http_code}' -b "$WORK/jar" -c "$WORK/jar4" --data-urlencode "nonce=$NONCE" \
  --data-urlencode "token=$LENA" "http://127.0.0.1:$ADMIN_PORT/console/signin/dev")
check "a token from sluice token signs in (303 and a session cookie)" bash -c "test '$code' = 303 && grep -q sluice_console '$WORK/jar4'"

echo "== sessions to look at"
printf '#!/bin/sh\nprintf "%%s\\n" "$SLUICE_TOKEN"\n' >"$WORK/askpass"
chmod +x "$WORK/askpass"
SLUICE_TOKEN=$ALICE SSH_ASKPASS=$WORK/askpass SSH_ASKPASS_REQUIRE=force DISPLAY=:0 \
  ssh -p "$SSH_PORT" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR \
  -o PubkeyAuthentication=no -o PreferredAuthentications=keyboard-interactive box@127.0.0.1 \
  "printf '\\033[1;31mDANGER\\033[0m deploy by jane.doe@example.com\\n'; sleep 0.3; printf 'card 4111 1111 1111 1111 ok\\n'" >"$WORK/ssh.out" 2>&1
check "an SSH session was recorded (masked on the way)" grep -q '\[EMAIL\]' "$WORK/ssh.out"
dsn="host=127.0.0.1 port=$PG_PORT dbname=app-db user=alice password=$ALICE sslmode=require"
echo "select name, email, ssn from customers" | psql "$dsn" -X -A -t >/dev/null
# The held statement starts once the browser has the reviews inbox open.
( wait_file "$WORK/trigger" || true; while [ ! -e "$WORK/trigger" ]; do sleep 0.2; done
  echo "delete from audit_keep" | psql "$dsn" -X -A -t -v ON_ERROR_STOP=1 >"$WORK/held.out" 2>&1 && echo 0 >"$WORK/held.rc" || echo $? >"$WORK/held.rc" ) &
PIDS+=($!)

echo "== the browser"
TOKEN_ALICE=$ALICE TOKEN_AUDREY=$("$SLUICE" token --config "$WORK/sluice.yaml" --user audrey --groups auditor,dba-leads) \
TOKEN_AUDREY_AUDITOR=$("$SLUICE" token --config "$WORK/sluice.yaml" --user audrey --groups auditor) \
TOKEN_ADMIN=$("$SLUICE" token --config "$WORK/sluice.yaml" --user adam --groups admin,eng) \
REVIEW_TRIGGER=$WORK/trigger "$VENV/bin/python" "$ROOT/Tests/IntegrationTests/console_browser.py" \
  "http://127.0.0.1:$ADMIN_PORT" "$WORK/shots" >"$WORK/browser.out" 2>&1 && rc=0 || rc=$?
sed 's/^/      /' "$WORK/browser.out"
check "browser checks pass" test "$rc" = 0
wait_file "$WORK/held.rc" || true
check "the held psql statement completed after the approval in the browser" bash -c "test \"\$(cat '$WORK/held.rc' 2>/dev/null)\" = 0 && grep -q DELETE '$WORK/held.out'"
if [ -n "$SHOTS" ]; then
  mkdir -p "$SHOTS"
  cp "$WORK"/shots/*.png "$SHOTS/"
  echo "      screenshots in $SHOTS"
fi

echo "console: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
