#!/usr/bin/env bash
# Gateway core against real processes: `sluice serve`, the real OIDC provider `oidc-provider-mock`
# (PyPI, in a venv this script makes), curl, SIGTERM/SIGHUP/SIGKILL, and `sluice audit verify`.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
SLUICE=${SLUICE:-$ROOT/.build/debug/sluice}
VENV=$ROOT/.build/venv-integration
WORK=$(mktemp -d /tmp/sluice-it.XXXXXX)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

source "$ROOT/Tests/IntegrationTests/lib.sh"


if [ ! -x "$VENV/bin/oidc-provider-mock" ]; then
  echo "integration: installing oidc-provider-mock into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q oidc-provider-mock
fi

IDP_PORT=$(free_port)
ADMIN_PORT=$(free_port)
HOOK_PORT=$(free_port)
# A webhook receiver that appends every POST body to a file.
python3 - "$HOOK_PORT" "$WORK/webhook.jsonl" >"$WORK/hook.log" 2>&1 <<'PY' &
import http.server, sys
port, path = int(sys.argv[1]), sys.argv[2]
class Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with open(path, "ab") as f:
            f.write(body + b"\n")
        self.send_response(204)
        self.end_headers()
http.server.HTTPServer(("127.0.0.1", port), Hook).serve_forever()
PY
PIDS+=($!)
ISSUER=http://127.0.0.1:$IDP_PORT
"$VENV/bin/oidc-provider-mock" -p "$IDP_PORT" \
  --user-claims '{"sub":"alice","preferred_username":"alice","groups":["eng","auditor"]}' \
  --user-claims '{"sub":"bob","preferred_username":"bob","groups":["eng"]}' >"$WORK/idp.log" 2>&1 &
PIDS+=($!)
wait_http "$ISSUER/.well-known/openid-configuration" || { echo "oidc-provider-mock did not start"; cat "$WORK/idp.log"; exit 1; }

cat >"$WORK/sluice.yaml" <<EOF
listen: { admin: 127.0.0.1:$ADMIN_PORT, postgres: off, ssh: off, http: off, kubernetes: off }
state_dir: $WORK/state
notifications: { review_webhook: "http://127.0.0.1:$HOOK_PORT/hook" }
detectors: [$ROOT/corpora]
identity:
  dev_issuer: true
  oidc:
    - { issuer: "$ISSUER", audience: sluice, user_claim: preferred_username, groups_claim: groups, client_secret_env: SLUICE_OIDC_SECRET }
connections:
  - name: app-db
    type: postgres
    target: 127.0.0.1:5432
    access: { groups: [eng] }
    reviews: { approvers: [dba-leads], timeout: 10m }
  - { name: billing, type: http, target: "http://127.0.0.1:9", credential: { token_env: SLUICE_IT_UNSET_TOKEN } }
EOF
unset SLUICE_IT_UNSET_TOKEN
ADMIN=http://127.0.0.1:$ADMIN_PORT
cd "$WORK"

export SLUICE_OIDC_SECRET=test-secret
start_gateway() {
  "$SLUICE" serve --config "$WORK/sluice.yaml" >>"$WORK/serve.log" 2>&1 &
  GATEWAY=$!
  PIDS+=("$GATEWAY")
  wait_http "$ADMIN/healthz" || { echo "sluice serve did not start"; cat "$WORK/serve.log"; exit 1; }
}

echo "== sluice serve, health, dev tokens"
start_gateway
check "healthz answers" bash -c "curl -fsS $ADMIN/healthz | grep -q '\"status\":\"ok\"'"
check "healthz names a connection whose credential is missing" \
  bash -c "curl -fsS $ADMIN/healthz | grep -q 'environment variable SLUICE_IT_UNSET_TOKEN is not set'"
check "and the start warned about it at the default level" \
  bash -c "grep 'credential unavailable' '$WORK/serve.log' | grep -q 'connection=billing'"
DEV=$("$SLUICE" token --config "$WORK/sluice.yaml" --user carol --groups eng,admin)
check "dev token lists sessions as JSON" bash -c "curl -fsS -H 'Authorization: Bearer $DEV' $ADMIN/api/sessions | python3 -c 'import json,sys; assert isinstance(json.load(sys.stdin), list)'"
code=$(curl -s -o /dev/null -w '%{http_code}' $ADMIN/api/sessions)
check "no token gets 401" test "$code" = 401

echo "== tokens from the real OIDC provider (oidc-provider-mock)"
ALICE=$(python3 "$ROOT/Tests/IntegrationTests/oidc_token.py" "$ISSUER" sluice alice)
BOB=$(python3 "$ROOT/Tests/IntegrationTests/oidc_token.py" "$ISSUER" sluice bob)
check "OIDC token maps user and groups" bash -c "curl -fsS -H 'Authorization: Bearer $ALICE' $ADMIN/api/me | grep -q '\"groups\":\[\"eng\",\"auditor\"\],\"issuer\":\"$ISSUER\",\"user\":\"alice\"'"
OUT=$(python3 "$ROOT/Tests/IntegrationTests/console_oidc.py" "$ADMIN" alice 2>&1 || true)
check "the web console signs in through the provider (authorization code + PKCE)" test "$OUT" = "signed-in alice"
OTHER_AUD=$(python3 "$ROOT/Tests/IntegrationTests/oidc_token.py" "$ISSUER" another-client alice)
check "token for another audience refused with its code" bash -c "curl -s -H 'Authorization: Bearer $OTHER_AUD' $ADMIN/api/me | grep -q token_wrong_audience"
TAMPERED=$(python3 - "$ALICE" <<'EOF'
import base64, json, sys
h, p, s = sys.argv[1].split(".")
claims = json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))
claims["groups"] = ["admin"]
p = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
print(".".join([h, p, s]))
EOF
)
check "token with edited claims refused (bad signature)" bash -c "curl -s -H 'Authorization: Bearer $TAMPERED' $ADMIN/api/me | grep -q token_bad_signature"
NONE=$(python3 - "$ALICE" <<'EOF'
import base64, sys
h, p, s = sys.argv[1].split(".")
print(base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').decode().rstrip("=") + "." + p + ".")
EOF
)
check "alg none refused" bash -c "curl -s -H 'Authorization: Bearer $NONE' $ADMIN/api/me | grep -q token_alg_none"
check "bob (no auditor) gets 403 on audit verify" bash -c "test \$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer $BOB' $ADMIN/api/audit/verify) = 403"
check "alice (auditor) runs audit verify over the API" bash -c "curl -fsS -H 'Authorization: Bearer $ALICE' $ADMIN/api/audit/verify | grep -q '\"ok\":true'"

echo "== just-in-time access request and review through the CLI"
REQ=$("$SLUICE" access request app-db --config "$WORK/sluice.yaml" --token "$BOB" --duration 30m --reason "incident 7")
RID=$(echo "$REQ" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
check "requester cannot approve own request" bash -c "! '$SLUICE' reviews approve $RID --config '$WORK/sluice.yaml' --token '$BOB' 2>&1 | grep -q '\"status\"'"
LEAD=$("$SLUICE" token --config "$WORK/sluice.yaml" --user lena --groups dba-leads)
check "an approver approves" bash -c "'$SLUICE' reviews approve $RID --config '$WORK/sluice.yaml' --token '$LEAD' | grep -q '\"status\":\"approved\"'"
sleep 0.5
check "webhook got the new review" bash -c "grep -q '\"id\":\"$RID\"' '$WORK/webhook.jsonl' && grep -q review.created '$WORK/webhook.jsonl'"
check "webhook carries no free text" bash -c "! grep -q 'incident 7' '$WORK/webhook.jsonl'"
check "reviews list shows it" bash -c "'$SLUICE' reviews list --config '$WORK/sluice.yaml' | grep -q \"$RID.*approved\""

echo "== reload: SIGHUP with a broken config keeps the running one"
cp "$WORK/sluice.yaml" "$WORK/good.yaml"
echo "connections: [ { name: x, type: nope } ]" >>"$WORK/sluice.yaml"
"$SLUICE" reload --config "$WORK/good.yaml" >/dev/null
sleep 1
check "gateway still healthy after a refused reload" bash -c "curl -fsS $ADMIN/healthz >/dev/null"
check "refused reload is a control event" bash -c "curl -fsS -H 'Authorization: Bearer $ALICE' '$ADMIN/api/audit/control' | grep -q config.reload_refused"
cp "$WORK/good.yaml" "$WORK/sluice.yaml"
kill -HUP "$GATEWAY"; sleep 1
check "good reload is a control event" bash -c "curl -fsS -H 'Authorization: Bearer $ALICE' '$ADMIN/api/audit/control' | grep -q config.reloaded"

echo "== graceful stop with console feeds open (one half-closed by its page, one live)"
COOKIE=$(python3 - "$ADMIN" "$DEV" <<'PY'
import http.cookiejar, re, sys, urllib.parse, urllib.request
admin, token = sys.argv[1], sys.argv[2]
jar = http.cookiejar.CookieJar()
opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
html = opener.open(admin + "/console/signin").read().decode()
nonce = re.search(r'name="nonce" value="([^"]+)"', html).group(1)
opener.open(admin + "/console/signin/dev", data=urllib.parse.urlencode({"nonce": nonce, "token": token}).encode())
print("; ".join(f"{c.name}={c.value}" for c in jar))
PY
)
timeout 2 curl -s -N -H "Cookie: $COOKIE" "$ADMIN/console/events" >"$WORK/feed-closed.out" || true
curl -s -N -H "Cookie: $COOKIE" "$ADMIN/console/events" >"$WORK/feed-live.out" 2>&1 &
FEED_PID=$!
sleep 1
check "the live feed is open" grep -q ': reviews' "$WORK/feed-live.out"

echo "== graceful stop (SIGTERM)"
stop_gateway "$GATEWAY"
check "sluice serve exits 0 on SIGTERM" test "$STOP_RC" = 0
check "within the shutdown bound, console feeds open ($STOP_SECONDS s)" test "$STOP_SECONDS" -le 12
for _ in $(seq 1 50); do kill -0 "$FEED_PID" 2>/dev/null || break; sleep 0.1; done
check "the live feed was ended by the stop" bash -c "! kill -0 $FEED_PID 2>/dev/null"
check "audit verify passes after a clean stop" "$SLUICE" audit verify --config "$WORK/sluice.yaml" >/dev/null

echo "== SIGKILL during writes"
start_gateway
for worker in 1 2 3; do
  ( for i in $(seq 1 400); do
      curl -s -o /dev/null -H "Authorization: Bearer bad.$worker.$i" $ADMIN/api/me
      curl -s -o /dev/null -X POST -H "Authorization: Bearer $BOB" -H 'Content-Type: application/json' \
        -d '{"connection":"app-db","duration":"10m","reason":"load"}' $ADMIN/api/access-requests
    done ) >/dev/null 2>&1 &
  PIDS+=($!)
done
sleep 3
kill -9 "$GATEWAY"
wait "$GATEWAY" 2>/dev/null || true
sleep 0.5
OUT=$("$SLUICE" audit verify --config "$WORK/sluice.yaml" || true)
echo "$OUT" | sed 's/^/      /'
check "audit verify passes after SIGKILL mid-write" bash -c "echo '$OUT' | grep -q 'audit verify: OK'"

echo "== an event edited by hand in the store is named"
python3 - "$WORK/state/sluice.db" <<'EOF'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.execute("UPDATE control_events SET detail = replace(detail, 'app-db', 'app-dc') WHERE seq = (SELECT min(seq) FROM control_events WHERE kind = 'access.requested')")
db.commit()
EOF
SEQ=$(python3 -c "import sqlite3; print(sqlite3.connect('$WORK/state/sluice.db').execute(\"SELECT min(seq) FROM control_events WHERE kind = 'access.requested'\").fetchone()[0])")
set +e
OUT=$("$SLUICE" audit verify --config "$WORK/sluice.yaml"); rc=$?
set -e
echo "$OUT" | grep BROKEN | sed 's/^/      /'
check "audit verify exits 1" test "$rc" = 1
check "audit verify names record #$SEQ" bash -c "echo '$OUT' | grep -q 'control chain record #$SEQ'"

echo "== broken configuration"
printf 'listen:\n  admin: nowhere\n' >"$WORK/broken.yaml"
set +e
ERR=$("$SLUICE" serve --config "$WORK/broken.yaml" 2>&1); rc=$?
set -e
check "broken config exits 2" test "$rc" = 2
check "error names file, line and key" bash -c "echo '$ERR' | grep -q 'broken.yaml:2: listen.admin'"

cat >"$WORK/misspelt.yaml" <<EOF2
listen: { admin: 127.0.0.1:$(free_port) }
state_dir: $WORK/state-misspelt
connections:
  - name: db
    type: postgres
    target: 127.0.0.1:5432
    guardrails:
      - { class: delet_without_where, action: review }
EOF2
set +e
"$SLUICE" serve --config "$WORK/misspelt.yaml" >"$WORK/misspelt.err" 2>&1; rc=$?
set -e
check "a misspelt guardrail class stops serve (exit 2)" test "$rc" = 2
check "naming the line, the key and the class meant" \
  grep -qF "misspelt.yaml:8: connections[0].guardrails[0].class: unknown class 'delet_without_where' for a postgres connection (did you mean 'delete_without_where'?)" "$WORK/misspelt.err"

BUSY_PORT=$(free_port)
python3 -c 'import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(1); time.sleep(60)' "$BUSY_PORT" &
BUSY_PID=$!
PIDS+=($BUSY_PID)
wait_port "$BUSY_PORT"
printf 'listen: { admin: 127.0.0.1:%s, postgres: 127.0.0.1:%s }\nstate_dir: %s\ndetectors: [%s]\n' \
  "$(free_port)" "$BUSY_PORT" "$WORK/state-busy" "$ROOT/corpora" >"$WORK/busy.yaml"
set +e
timeout 30 "$SLUICE" serve --config "$WORK/busy.yaml" >"$WORK/busy.err" 2>&1; rc=$?
set -e
check "a listener address in use stops serve (exit 2)" test "$rc" = 2
check "naming the listener and its address" grep -qF "listen.postgres: cannot listen on 127.0.0.1:$BUSY_PORT: Address already in use" "$WORK/busy.err"
kill "$BUSY_PID" 2>/dev/null || true

echo "== the dev issuer on a public address"
PUB_PORT=$(free_port)
printf 'listen: { admin: 0.0.0.0:%s, postgres: off, ssh: off, http: off, kubernetes: off }\nstate_dir: %s\ndetectors: [%s]\n' \
  "$PUB_PORT" "$WORK/state-public" "$ROOT/corpora" >"$WORK/public.yaml"
set +e
ERR=$(timeout 20 "$SLUICE" serve --config "$WORK/public.yaml" 2>&1); rc=$?
set -e
check "serve refuses the dev issuer on 0.0.0.0 (exit 2)" test "$rc" = 2
check "the refusal names identity.dev_issuer and the listener" bash -c "echo '$ERR' | grep -q 'identity.dev_issuer: the dev issuer is on and admin 0.0.0.0:$PUB_PORT'"
printf 'identity: { dev_issuer_public: true }\n' >>"$WORK/public.yaml"
"$SLUICE" serve --config "$WORK/public.yaml" >"$WORK/public.out" 2>"$WORK/public.err" &
PUBLIC_PID=$!
PIDS+=($PUBLIC_PID)
check "with identity.dev_issuer_public: true it starts" wait_http "http://127.0.0.1:$PUB_PORT/healthz"
check "and warns loudly on stderr" grep -q 'WARNING: the dev issuer is on and listeners face the network (admin 0.0.0.0' "$WORK/public.err"
kill -TERM "$PUBLIC_PID"; wait "$PUBLIC_PID" 2>/dev/null || true
check "and records a gateway.dev_issuer_public control event" python3 -c '
import sqlite3, sys
kinds = [row[0] for row in sqlite3.connect(sys.argv[1]).execute("select kind from control_events")]
sys.exit(0 if "gateway.dev_issuer_public" in kinds else 1)' "$WORK/state-public/sluice.db"

echo "== only the listeners a listen block names open"
ONLY_ADMIN=$(free_port)
ONLY_SSH=$(free_port)
printf 'listen: { admin: 127.0.0.1:%s, ssh: 127.0.0.1:%s }\nstate_dir: %s\ndetectors: [%s]\n' \
  "$ONLY_ADMIN" "$ONLY_SSH" "$WORK/state-only" "$ROOT/corpora" >"$WORK/only.yaml"
"$SLUICE" serve --config "$WORK/only.yaml" >"$WORK/only.out" 2>&1 &
ONLY_PID=$!
PIDS+=($ONLY_PID)
check "a gateway with listen: { admin, ssh } starts" wait_http "http://127.0.0.1:$ONLY_ADMIN/healthz"
# The TCP ports this process listens on: its socket inodes (/proc/PID/fd) in LISTEN state in /proc/net/tcp{,6}.
python3 - "$ONLY_PID" >"$WORK/only.ports" <<'PY'
import os, sys
pid = sys.argv[1]
inodes = set()
for fd in os.listdir(f"/proc/{pid}/fd"):
    try:
        target = os.readlink(f"/proc/{pid}/fd/{fd}")
    except OSError:
        continue
    if target.startswith("socket:["):
        inodes.add(target[8:-1])
ports = set()
for table in ("/proc/net/tcp", "/proc/net/tcp6"):
    with open(table) as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:
                ports.add(int(fields[1].split(":")[1], 16))
print("\n".join(str(p) for p in sorted(ports)))
PY
check "it listens on exactly the two named ports" test "$(tr '\n' ' ' <"$WORK/only.ports")" = "$(printf '%s\n%s\n' "$ONLY_ADMIN" "$ONLY_SSH" | sort -n | tr '\n' ' ')"
check "and not on the default Postgres, HTTP or Kubernetes ports" bash -c "! grep -qxE '15432|18080|16443' '$WORK/only.ports'"
kill -TERM "$ONLY_PID"; wait "$ONLY_PID" 2>/dev/null || true

echo "== relative paths name places next to the configuration file"
mkdir -p "$WORK/rel" "$WORK/elsewhere" "$WORK/empty"
REL_ADMIN=$(free_port)
printf 'listen: { admin: 127.0.0.1:%s }\nstate_dir: state\ndetectors: [%s]\n' "$REL_ADMIN" "$ROOT/corpora" >"$WORK/rel/sluice.yaml"
(cd "$WORK/elsewhere" && exec "$SLUICE" serve --config ../rel/sluice.yaml) >"$WORK/rel.out" 2>&1 &
REL_PID=$!
PIDS+=($REL_PID)
check "a gateway started from another folder is up" wait_http "http://127.0.0.1:$REL_ADMIN/healthz"
check "its state is next to its configuration" test -s "$WORK/rel/state/signing.key"
check "and not in the folder it was started from" test ! -e "$WORK/elsewhere/state"
REL_TOKEN=$(cd / && "$SLUICE" token --config "$WORK/rel/sluice.yaml" --user rita --groups eng)
check "sluice token run from / mints a token that gateway accepts" \
  bash -c "curl -fsS -H 'Authorization: Bearer $REL_TOKEN' http://127.0.0.1:$REL_ADMIN/api/me | grep -q '\"user\":\"rita\"'"
kill -TERM "$REL_PID"; wait "$REL_PID" 2>/dev/null || true
printf 'state_dir: nothing-here\n' >"$WORK/empty/sluice.yaml"
set +e
(cd "$WORK/elsewhere" && "$SLUICE" token --config "$WORK/empty/sluice.yaml" --user x) >"$WORK/empty.err" 2>&1; rc=$?
set -e
check "sluice token without a gateway's key exits 2" test "$rc" = 2
check "and says where it looked" grep -qF "$WORK/empty/nothing-here/signing.key: state_dir: no signing key here" "$WORK/empty.err"
check "and creates no state" bash -c "test ! -e '$WORK/empty/nothing-here' && test ! -e '$WORK/elsewhere/nothing-here'"
set +e
(cd "$WORK/elsewhere" && "$SLUICE" reviews list --config "$WORK/empty/sluice.yaml") >"$WORK/empty-reviews.err" 2>&1; rc=$?
set -e
check "sluice reviews list on a configuration without a store exits 2, not an empty list" test "$rc" = 2
check "and names the store it looked for" grep -qF "$WORK/empty/nothing-here/sluice.db: store: no store at this path" "$WORK/empty-reviews.err"
check "still creating no state" test ! -e "$WORK/empty/nothing-here"

echo "gateway-core: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
