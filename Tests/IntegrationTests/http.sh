#!/usr/bin/env bash
# The HTTP adapter against a real upstream HTTP server (Tests/IntegrationTests/http_upstream.py),
# with the real curl: masking of JSON, chunked, gzip and deflate bodies; refusal of bodies it
# cannot scan; credential injection; block and review rules; a 100 MB body in bounded memory;
# slow and malformed clients. And the attacks of the security review: personal data in response
# headers, under unlisted content types, in UTF-16, behind JSON escapes, fullwidth digits and
# zero-width characters, in 206 byte ranges; paths that climb out of the connection or dodge a
# rule (`//admin`, `%61dmin`, `..`, HEAD); a token that expires on a kept-alive connection.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
SLUICE=${SLUICE:-$ROOT/.build/debug/sluice}
WORK=$(mktemp -d /tmp/sluice-http.XXXXXX)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  if [ -n "${SLUICE_IT_KEEP:-}" ]; then rm -rf /tmp/sluice-http.last && cp -r "$WORK" /tmp/sluice-http.last; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
source "$ROOT/Tests/IntegrationTests/lib.sh"

echo "== upstream service"
UP_PORT=$(free_port)
python3 "$ROOT/Tests/IntegrationTests/http_upstream.py" --port "$UP_PORT" --log "$WORK/upstream.log" >"$WORK/upstream.out" 2>&1 &
PIDS+=($!)
wait_port "$UP_PORT" || { cat "$WORK/upstream.out"; exit 1; }

ADMIN_PORT=$(free_port)
HTTP_PORT=$(free_port)
DEAD_PORT=$(free_port)   # nothing listens there
printf 'key-for-upstream-%s' "$RANDOM" >"$WORK/api-key"
export API_TOKEN="upstream-bearer-$RANDOM$RANDOM"
cat >"$WORK/sluice.yaml" <<YAML
listen: { admin: 127.0.0.1:$ADMIN_PORT, postgres: off, ssh: off, http: 127.0.0.1:$HTTP_PORT, kubernetes: off }
state_dir: $WORK/state
detectors: [$ROOT/corpora]
identity: { clock_skew: 1s }
http: { header_timeout: 4s, host_suffix: gw.test }
connections:
  - name: api
    type: http
    target: http://127.0.0.1:$UP_PORT
    credential: { token_env: API_TOKEN }
    access: { groups: [eng, dpo] }
    masking: { unmasked_groups: [dpo] }
    http: { pass_through_types: [image/*, application/zip] }
    guardrails:
      - { match: '^DELETE ', action: block, message: "deletes go through the billing console" }
      - { match: '^GET /admin', action: block, message: "admin is off limits" }
      - { match: '^POST /refunds', action: review }
    reviews: { approvers: [leads], timeout: 2m }
  - name: keyed
    type: http
    target: http://127.0.0.1:$UP_PORT
    credential: { header: X-Api-Key, token_file: $WORK/api-key }
    access: { groups: [eng] }
  - name: reports
    type: http
    target: http://127.0.0.1:$UP_PORT/reports
    access: { groups: [eng] }
  - name: long
    type: http
    target: http://127.0.0.1:$UP_PORT
    access: { groups: [eng] }
    session: { end_on_token_expiry: false }
  - name: ops-only
    type: http
    target: http://127.0.0.1:$UP_PORT
    access: { groups: [ops] }
  - name: gone
    type: http
    target: http://127.0.0.1:$DEAD_PORT
    access: { groups: [eng] }
YAML
"$SLUICE" serve --config "$WORK/sluice.yaml" >"$WORK/serve.log" 2>&1 &
GATEWAY=$!
PIDS+=("$GATEWAY")
wait_port "$HTTP_PORT" || { cat "$WORK/serve.log"; exit 1; }
ALICE=$("$SLUICE" token --config "$WORK/sluice.yaml" --user alice --groups eng)
DPO=$("$SLUICE" token --config "$WORK/sluice.yaml" --user dora --groups dpo)
LEAD=$("$SLUICE" token --config "$WORK/sluice.yaml" --user lena --groups leads)
GW=http://127.0.0.1:$HTTP_PORT
get() { curl -sS --max-time 20 -H "Authorization: Bearer $1" "${@:2}"; }

echo "== masking"
OUT=$(get "$ALICE" "$GW/api/customers")
check "a JSON body is masked" bash -c "grep -q '\[EMAIL\]' <<<'$OUT' && ! grep -q 'jane.doe@example.com' <<<'$OUT' && ! grep -q '268-45-8731' <<<'$OUT'"
check "decoys are kept" bash -c "grep -q 'order 4111111111111112' <<<'$OUT' && grep -q 'not-an-email' <<<'$OUT'"
check "the masked body is still valid JSON" bash -c "python3 -c 'import json,sys; json.loads(sys.argv[1])' '$OUT'"
OUT=$(get "$DPO" "$GW/api/customers")
check "an unmasked group sees the data" bash -c "grep -q 'jane.doe@example.com' <<<'$OUT'"
HEADERS=$(get "$ALICE" -D - -o /dev/null "$GW/api/customers")
check "a Content-Length body whose length changes is re-framed as chunked" bash -c "grep -qi '^transfer-encoding: chunked' <<<'$HEADERS' && ! grep -qi '^content-length' <<<'$HEADERS'"
check "validators of the original bytes are weakened" bash -c "grep -qi '^etag: W/' <<<'$HEADERS'"
OUT=$(get "$ALICE" "$GW/api/stream")
check "a chunked NDJSON body split inside values is masked" bash -c "test \$(grep -c '\[EMAIL\]' <<<'$OUT') = 2 && ! grep -q '@example' <<<'$OUT'"
OUT=$(get "$ALICE" "$GW/api/gzip")
check "a gzip body is decoded, masked and sent as identity" bash -c "grep -q '\[EMAIL\]' <<<'$OUT' && ! grep -q 'jane.doe' <<<'$OUT'"
OUT=$(get "$ALICE" --compressed "$GW/api/deflate")
check "a deflate body is decoded and masked" bash -c "grep -q '\[EMAIL\]' <<<'$OUT' && ! grep -q 'jane.doe' <<<'$OUT'"
CODE=$(get "$ALICE" -o "$WORK/br.out" -w '%{http_code}' "$GW/api/brotli")
check "a body in an encoding the gateway cannot scan is refused with 502" bash -c "test '$CODE' = 502 && grep -q unscannable '$WORK/br.out'"
get "$ALICE" -o "$WORK/binary.out" "$GW/api/binary"
curl -sS -o "$WORK/binary.direct" "http://127.0.0.1:$UP_PORT/binary"
check "a binary body passes byte for byte" cmp -s "$WORK/binary.out" "$WORK/binary.direct"
OUT=$(curl -sS --max-time 10 -H "Authorization: Bearer $ALICE" -H "Host: api.gw.test" "$GW/customers")
check "Host-based routing reaches the connection" bash -c "grep -q '\[EMAIL\]' <<<'$OUT'"

echo "== personal data outside the body"
HEADERS=$(get "$ALICE" -D - -o /dev/null "$GW/api/pii-headers")
check "a custom header and a cookie are masked" bash -c "grep -qi '^x-customer-email: \[EMAIL\]' <<<'$HEADERS' && grep -qi '^set-cookie: who=\[EMAIL\]' <<<'$HEADERS' && ! grep -q jane <<<'$HEADERS'"
HEADERS=$(get "$ALICE" -D - -o /dev/null "$GW/api/redirect")
check "a redirect's Location (percent-encoded) is masked" bash -c "grep -q '^HTTP/1.1 302' <<<'$HEADERS' && grep -qi '^location: /users/\[EMAIL\]' <<<'$HEADERS' && ! grep -qi jane <<<'$HEADERS'"
HEADERS=$(get "$ALICE" -D - -o /dev/null "$GW/api/not-modified")
check "a 304's headers are masked" bash -c "grep -q '^HTTP/1.1 304' <<<'$HEADERS' && grep -qi '^x-customer-email: \[EMAIL\]' <<<'$HEADERS' && ! grep -q jane <<<'$HEADERS'"
HEADERS=$(get "$DPO" -D - -o /dev/null "$GW/api/pii-headers")
check "an unmasked group sees the headers as they are" bash -c "grep -qi '^x-customer-email: jane.doe@example.com' <<<'$HEADERS'"
for path in octet xjson jsonp toml sql xtext typelist notype multipart; do
  OUT=$(get "$ALICE" "$GW/api/$path")
  check "a body served as /$path (type off the text lists) is scanned" \
    bash -c "grep -q '\[EMAIL\]' <<<'$OUT' && ! grep -q jane <<<'$OUT' && ! grep -q '268-45-8731' <<<'$OUT'"
done
OUT=$(get "$ALICE" "$GW/api/escaped")
check "JSON escapes (\\u0040, \\/) are decoded before scanning; the body stays JSON" \
  bash -c "test \$(grep -o '\[EMAIL\]' <<<'$OUT' | wc -l) = 2 && ! grep -q jane <<<'$OUT' && python3 -c 'import json,sys; json.loads(sys.argv[1])' '$OUT'"
OUT=$(get "$ALICE" "$GW/api/fullwidth")
check "fullwidth digits and zero-width characters are normalised and masked" \
  bash -c "grep -q '\[EMAIL\]' <<<'$OUT' && ! grep -q jane <<<'$OUT' && ! grep -q '268-45-8731' <<<'$OUT' && ! grep -q \$(printf '\\xef\\xbc\\x92') <<<'$OUT'"
for path in utf16 utf16-bom octet-binary; do
  CODE=$(get "$ALICE" -o "$WORK/refused.out" -w '%{http_code}' "$GW/api/$path")
  check "/$path (UTF-16 or binary, not on the pass-through list) is refused with 502" \
    bash -c "test '$CODE' = 502 && grep -q unscannable_response '$WORK/refused.out' && ! grep -qa 'j.\?a.\?n.\?e' '$WORK/refused.out'"
done
get "$ALICE" -o "$WORK/u16json.out" "$GW/api/utf16-json" 2>/dev/null && rc=0 || rc=$?
check "UTF-16 under a JSON type cuts the response, nothing of it sent" bash -c "test $rc != 0 && ! test -s '$WORK/u16json.out'"
: >"$WORK/upstream.log"
CODE=$(get "$ALICE" -r 0-20 -o "$WORK/range.out" -w '%{http_code}' "$GW/api/range")
check "a Range request on a masked connection gets the whole body, masked" \
  bash -c "test '$CODE' = 200 && grep -q '\[EMAIL\]' '$WORK/range.out' && ! grep -q jane '$WORK/range.out'"
check "Range and If-Range never reach the upstream for a masked user" bash -c "grep -q '\"range\": null' '$WORK/upstream.log' && ! grep -q 'bytes=' '$WORK/upstream.log'"
CODE=$(get "$ALICE" -o "$WORK/partial.out" -w '%{http_code}' "$GW/api/always-partial")
check "a 206 answer on a masked connection is refused with 502" bash -c "test '$CODE' = 502 && ! grep -q jane '$WORK/partial.out'"
CODE=$(get "$DPO" -r 0-20 -o "$WORK/range-dpo.out" -w '%{http_code}' "$GW/api/range")
check "an unmasked user keeps byte ranges" bash -c "test '$CODE' = 206 && test \$(wc -c <'$WORK/range-dpo.out') = 21"

echo "== paths"
: >"$WORK/upstream.log"
for path in /admin //admin /./admin /%61dmin /x/../admin /admin/; do
  CODE=$(get "$ALICE" --path-as-is -o "$WORK/path.out" -w '%{http_code}' "$GW/api$path")
  check "GET /api$path is blocked by the rule on /admin" bash -c "test '$CODE' = 403 && grep -q 'admin is off limits' '$WORK/path.out'"
done
CODE=$(get "$ALICE" -I -o /dev/null -w '%{http_code}' "$GW/api/admin")
check "HEAD /admin is blocked by the GET rule" test "$CODE" = 403
for path in /../admin /%2e%2e/admin /..%2fadmin /x/..%2F..%2Fadmin /a%5c..%5cadmin /.%2e/admin; do
  CODE=$(get "$ALICE" --path-as-is -o /dev/null -w '%{http_code}' "$GW/reports$path")
  check "/reports$path is refused (400 or 403)" bash -c "test '$CODE' = 400 || test '$CODE' = 403"
done
check "no admin request reached the upstream" bash -c "! grep -q admin '$WORK/upstream.log'"
get "$ALICE" --path-as-is -o /dev/null "$GW/reports/x/..//summary/%7Eq%20r"
check "a normalised path goes upstream, inside the base path" grep -q '"path": "/reports/summary/~q%20r"' "$WORK/upstream.log"

echo "== token expiry"
cat >"$WORK/keepalive.py" <<'PY'
# One kept-alive connection: a request, then (after exp + the 1 s skew) a second one, or just a read.
import base64, json, socket, sys, time
port, token, path, mode = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
payload = token.split(".")[1]
exp = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["exp"]
sock = socket.create_connection(("127.0.0.1", port), timeout=10)
reader = sock.makefile("rb")
def ask():
    sock.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer " + token.encode() + b"\r\n\r\n")
    status = int(reader.readline().split()[1])
    headers = {}
    while True:
        line = reader.readline().decode().strip()
        if not line:
            break
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        body = reader.read(int(headers["content-length"]))
    else:   # chunked
        body = b""
        while True:
            size = int(reader.readline().strip(), 16)
            if size == 0:
                reader.readline()
                break
            body += reader.read(size)
            reader.readline()
    return status, headers, body.decode()
status, _, _ = ask()
print("first", status)
if mode == "wait":
    started = time.time()
    print("closed-by-gateway", reader.read(1) == b"", "after", round(time.time() - started, 1))
    sys.exit(0)
time.sleep(max(0, exp + 1 + 1.2 - time.time()))   # past exp + the 1 s skew, on the same connection
status, headers, body = ask()
print("second", status, "token_expired" in body, headers.get("connection"))
print("closed", reader.read(1) == b"")
PY
SHORT=$("$SLUICE" token --config "$WORK/sluice.yaml" --user alice --groups eng --ttl 1s)
OUT=$(python3 "$WORK/keepalive.py" "$HTTP_PORT" "$SHORT" /long/whoami ask)
check "kept alive past exp + skew (end_on_token_expiry: false): 401 token_expired, then closed" \
  bash -c "grep -q 'first 200' <<<'$OUT' && grep -q 'second 401 True close' <<<'$OUT' && grep -q 'closed True' <<<'$OUT'"
SHORT=$("$SLUICE" token --config "$WORK/sluice.yaml" --user alice --groups eng --ttl 1s)
OUT=$(python3 "$WORK/keepalive.py" "$HTTP_PORT" "$SHORT" /api/whoami wait)
check "kept alive past exp + skew (end_on_token_expiry default): the gateway closes the connection" \
  bash -c "grep -q 'first 200' <<<'$OUT' && grep -q 'closed-by-gateway True' <<<'$OUT'"
SHORT=$("$SLUICE" token --config "$WORK/sluice.yaml" --user alice --groups eng --ttl 1s)
START=$(date +%s.%N)
get "$SHORT" -o "$WORK/trickle.out" "$GW/api/trickle?seconds=8" 2>/dev/null && rc=0 || rc=$?
END=$(date +%s.%N)
check "a response still streaming when the token expires is ended (session.end_on_token_expiry)" \
  bash -c "test $rc != 0 && python3 -c 'import sys; sys.exit(0 if $END - $START < 6 else 1)' && grep -q '\"t\"' '$WORK/trickle.out'"
SHORT=$("$SLUICE" token --config "$WORK/sluice.yaml" --user alice --groups eng --ttl 1s)
get "$SHORT" -o "$WORK/trickle-long.out" "$GW/long/trickle?seconds=5" && rc=0 || rc=$?
check "with end_on_token_expiry: false the response runs to its end" bash -c "test $rc = 0 && test \$(wc -l <'$WORK/trickle-long.out') -ge 9"

echo "== credentials"
: >"$WORK/upstream.log"
get "$ALICE" "$GW/api/whoami" >/dev/null
EXPECTED=$(printf 'Bearer %s' "$API_TOKEN" | sha256sum | cut -c1-16)
USER_SHA=$(printf 'Bearer %s' "$ALICE" | sha256sum | cut -c1-16)
check "the upstream sees the connection's bearer token" grep -q "\"auth_sha256\": \"$EXPECTED\"" "$WORK/upstream.log"
check "the upstream never sees the user's token" bash -c "! grep -q '$USER_SHA' '$WORK/upstream.log'"
check "X-Forwarded-For and -Proto are set" bash -c "grep -q '\"x_forwarded_for\": \"127.0.0.1\"' '$WORK/upstream.log' && grep -q '\"x_forwarded_proto\": \"http\"' '$WORK/upstream.log'"
: >"$WORK/upstream.log"
get "$ALICE" "$GW/keyed/whoami" >/dev/null
KEY_SHA=$(printf '%s' "$(cat "$WORK/api-key")" | sha256sum | cut -c1-16)
check "a named-header credential is sent from its file" bash -c "grep -q '\"x_api_key_sha256\": \"$KEY_SHA\"' '$WORK/upstream.log' && grep -q '\"auth_scheme\": null' '$WORK/upstream.log'"
check "hop-by-hop headers are not forwarded as sent" bash -c "! grep -qi '\"connection\": \"close\"' '$WORK/upstream.log'"

echo "== authentication and routing errors"
check "no token: 401" test "$(curl -sS -o /dev/null -w '%{http_code}' "$GW/api/customers")" = 401
check "a bad token: 401" test "$(get not-a-token -o /dev/null -w '%{http_code}' "$GW/api/customers")" = 401
check "no access to the connection: 403" test "$(get "$ALICE" -o /dev/null -w '%{http_code}' "$GW/ops-only/customers")" = 403
check "an unknown connection: 404" test "$(get "$ALICE" -o /dev/null -w '%{http_code}' "$GW/nope/customers")" = 404

echo "== an unreachable upstream"
CODE=$(get "$ALICE" -o "$WORK/gone.out" -w '%{http_code}' "$GW/gone/x")
check "a connection whose upstream is down answers 502 upstream_unreachable" bash -c "test '$CODE' = 502 && grep -q upstream_unreachable '$WORK/gone.out'"
check "the 502 names the connection but not the internal address or the network error" \
  bash -c "grep -q gone '$WORK/gone.out' && ! grep -q '$DEAD_PORT' '$WORK/gone.out' && ! grep -qi 'refused\|NIO\|errno' '$WORK/gone.out'"
check "the gateway logs it at the default level, with the target" \
  bash -c "grep 'upstream unreachable' '$WORK/serve.log' | grep -q 'connection=gone' && grep 'upstream unreachable' '$WORK/serve.log' | grep -q '$DEAD_PORT'"

echo "== guardrails"
: >"$WORK/upstream.log"
CODE=$(get "$ALICE" -X DELETE -o "$WORK/delete.out" -w '%{http_code}' "$GW/api/items/7")
check "a blocked request gets 403 with a JSON reason" bash -c "test '$CODE' = 403 && grep -q 'deletes go through the billing console' '$WORK/delete.out'"
check "a blocked request never reaches the upstream" bash -c "! grep -q DELETE '$WORK/upstream.log'"
( get "$ALICE" -X POST -H 'Content-Type: application/json' -d '{"order": 7, "amount": 12}' -o "$WORK/review1.out" -w '%{http_code}' \
    --max-time 60 "$GW/api/refunds" >"$WORK/review1.code"; echo $? >"$WORK/review1.rc" ) &
PIDS+=($!)
RID=$(pending_review "$WORK/sluice.yaml")
check "a reviewed request is held" bash -c "test -n '$RID' && ! grep -q refunds '$WORK/upstream.log'"
"$SLUICE" reviews approve "$RID" --config "$WORK/sluice.yaml" --token "$LEAD" >/dev/null
wait_file "$WORK/review1.rc" || true
check "it runs after approval, body intact" bash -c "test \"\$(cat '$WORK/review1.code')\" = 200 && grep -q '\"received\": 26' '$WORK/review1.out'"
( get "$ALICE" -X POST -d 'x=1' -o "$WORK/review2.out" -w '%{http_code}' --max-time 60 "$GW/api/refunds" >"$WORK/review2.code"; echo $? >"$WORK/review2.rc" ) &
PIDS+=($!)
RID=$(pending_review "$WORK/sluice.yaml")
"$SLUICE" reviews deny "$RID" --config "$WORK/sluice.yaml" --token "$LEAD" --reason "not today" >/dev/null
wait_file "$WORK/review2.rc" || true
check "it fails with 403 and the reason after a denial" bash -c "test \"\$(cat '$WORK/review2.code')\" = 403 && grep -q 'denied by lena: not today' '$WORK/review2.out'"
get "$ALICE" -X POST -d 'x=3' -o /dev/null --max-time 3 "$GW/api/refunds" >/dev/null 2>&1 || true   # gives up while held
GAVE_UP=""
for _ in $(seq 1 50); do
  GAVE_UP=$("$SLUICE" reviews list --config "$WORK/sluice.yaml" --json | python3 -c '
import json, sys
for r in json.load(sys.stdin):
    if (r.get("denied_by") == "sluice" or (r.get("denial") or {}).get("user") == "sluice") and "withdrawn" in json.dumps(r):
        print(r["id"]); break')
  [ -n "$GAVE_UP" ] && break
  sleep 0.2
done
check "a review whose client gave up is withdrawn, not left pending" test -n "$GAVE_UP"
check "and no review is left pending" bash -c "'$SLUICE' reviews list --config '$WORK/sluice.yaml' --status pending --json | python3 -c 'import json, sys; sys.exit(len(json.load(sys.stdin)))'"

echo "== keep-alive"
: >"$WORK/upstream.log"
curl -sS -v -H "Authorization: Bearer $ALICE" "$GW/api/customers" "$GW/api/stream" "$GW/api/whoami" -o /dev/null -o /dev/null -o /dev/null 2>"$WORK/keepalive.err"
check "the client connection is reused" grep -q 'Re-using existing connection' "$WORK/keepalive.err"
PORTS=$(python3 -c 'import json,sys; print(len({json.loads(l)["client_port"] for l in open(sys.argv[1])}))' "$WORK/upstream.log")
check "the upstream connection is reused (3 requests, 1 connection)" test "$PORTS" = 1

START=$(date +%s.%N)
OUT=$(curl -sS --max-time 5 -H "Authorization: Bearer $ALICE" "$GW/api/close" "$GW/api/customers" 2>&1 || true)
END=$(date +%s.%N)
check "an upstream that closes after its answer: answer at once, next request on a new upstream" \
  bash -c "grep -q '\"bye\":\"\[EMAIL\]\"' <<<'$OUT' && grep -q customers <<<'$OUT' && python3 -c 'import sys; sys.exit(0 if $END - $START < 2 else 1)'"

echo "== a 100 MB body"
START=$(date +%s.%N)
get "$ALICE" --max-time 300 "$GW/api/big?mb=100" -o "$WORK/big.out" &
CURL=$!
PEAK=0
while kill -0 "$CURL" 2>/dev/null; do
  RSS=$(awk '/VmRSS/ {print $2}' "/proc/$GATEWAY/status")
  [ "$RSS" -gt "$PEAK" ] && PEAK=$RSS
  sleep 0.2
done
wait "$CURL" && rc=0 || rc=$?
END=$(date +%s.%N)
LINES=$(wc -l <"$WORK/big.out")
EXPECTED_LINES=$(( 100 * 1024 * 1024 / 110 ))   # http_upstream.py: 110-byte lines
echo "      100 MB in $(python3 -c "print(round($END - $START, 1))") s; gateway peak RSS $((PEAK / 1024)) MiB"
check "100 MB streamed complete and masked" bash -c "test $rc = 0 && test $LINES = $EXPECTED_LINES && ! grep -q -m1 'jane.doe' '$WORK/big.out'"
check "the gateway's memory stays bounded (< 150 MiB RSS)" test "$PEAK" -lt $((150 * 1024))

echo "== slow and malformed clients"
python3 - "$HTTP_PORT" >"$WORK/slow.out" 2>&1 <<'PY' &
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"GET /api/customers HTTP/1.1\r\nHost: x\r\n")
time.sleep(6)
try:
    print(s.recv(4096).decode(errors="replace").split("\r\n")[0])
except Exception as e:
    print("error", e)
PY
SLOW=$!
sleep 0.5
START=$(date +%s.%N)
OUT=$(get "$ALICE" -o /dev/null -w '%{http_code}' "$GW/api/customers")
END=$(date +%s.%N)
check "a slow client does not stall others" bash -c "test '$OUT' = 200 && python3 -c 'import sys; sys.exit(0 if $END - $START < 2 else 1)'"
wait "$SLOW" || true
check "a slow-loris header gets 408" grep -q '408' "$WORK/slow.out"
OUT=$(python3 - "$HTTP_PORT" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(b"GET /api/customers HTTP/1.1\r\nHost: x\r\nContent-Length: banana\r\n\r\n")
print(s.recv(4096).decode(errors="replace").split("\r\n")[0])
PY
)
check "a malformed request gets 400" bash -c "grep -q ' 400 ' <<<'$OUT'"
python3 - "$HTTP_PORT" <<'PY'
import os, socket, sys
for payload in [os.urandom(512), b"\x16\x03\x01\x02\x00" + os.urandom(100), b"GET / HTTP/1.1\r\n" + b"X: " + b"a" * 100000 + b"\r\n\r\n"]:
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
    try:
        s.sendall(payload)
        s.recv(100)
    except Exception:
        pass
    s.close()
PY
check "garbage leaves the gateway serving" test "$(get "$ALICE" -o /dev/null -w '%{http_code}' "$GW/api/customers")" = 200

echo "== the record"
"$SLUICE" audit verify --config "$WORK/sluice.yaml" >"$WORK/verify.out" 2>&1 && rc=0 || rc=$?
check "audit verify passes" test "$rc" = 0
sessions_of() {   # every session of user $1 on connection ${3:-api}, shown one after the other
  : >"$2"
  for sid in $("$SLUICE" sessions list --config "$WORK/sluice.yaml" --user "$1" --connection "${3:-api}" --limit 1000 --json |
               python3 -c 'import json, sys; print(" ".join(s["id"] for s in json.load(sys.stdin)))'); do
    "$SLUICE" sessions show "$sid" --config "$WORK/sluice.yaml" >>"$2"
  done
}
sessions_of dora "$WORK/dora.json"
check "requests are recorded with method, path and status" bash -c "grep -q 'GET /customers' '$WORK/dora.json' && grep -q 'status' '$WORK/dora.json'"
check "an unmasked user's responses are recorded masked" bash -c "grep -q 'EMAIL' '$WORK/dora.json'"
check "no raw PII in the store" bash -c "! grep -rqa 'jane.doe@example.com' '$WORK/state/'"
sessions_of alice "$WORK/alice.json"
check "rules saw and the record holds the normalised path" bash -c "grep -q 'GET /admin' '$WORK/alice.json' && ! grep -q '%61dmin' '$WORK/alice.json' && ! grep -q '/x/../admin' '$WORK/alice.json'"
check "refused bodies are recorded with why" bash -c "grep -q 'pass-through' '$WORK/alice.json' && grep -q '206' '$WORK/alice.json' && grep -q 'charset' '$WORK/alice.json'"
sessions_of alice "$WORK/alice-long.json" long
check "an expired token on a kept-alive connection is recorded" grep -q token_expired "$WORK/alice-long.json"
check "a session ended at its token's expiry is recorded so" grep -q 'token expired' "$WORK/alice.json"
check "the record holds no PII from headers, escapes or fullwidth forms" bash -c "! grep -q 'jane' '$WORK/alice.json' && ! grep -q '268-45-8731' '$WORK/alice.json'"
check "no tokens in the gateway log" bash -c "! grep -q '$API_TOKEN' '$WORK/serve.log' && ! grep -qF '$ALICE' '$WORK/serve.log'"

echo "== graceful stop with a kept-alive connection and a held review open"
python3 - "$HTTP_PORT" "$ALICE" >"$WORK/keepalive.out" 2>&1 <<'PY' &
import socket, sys
port, token = int(sys.argv[1]), sys.argv[2]
s = socket.create_connection(("127.0.0.1", port), timeout=60)
s.sendall(f"GET /api/customers HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n".encode())
data = b""
try:
    while True:   # the answer, then wait on the kept-alive connection until the gateway closes it
        chunk = s.recv(65536)
        if not chunk:
            break
        if not data:
            print("answered", flush=True)
        data += chunk
except ConnectionResetError:   # a close with a reset is a close too
    pass
print("closed by the gateway after", len(data), "bytes")
PY
KEEP_PID=$!
# The stop must find the connection kept alive (answered, idle), not still connecting.
for _ in $(seq 1 100); do grep -q answered "$WORK/keepalive.out" 2>/dev/null && break; sleep 0.1; done
( get "$ALICE" -X POST -d 'x=2' -o "$WORK/review3.out" -w '%{http_code}' --max-time 60 "$GW/api/refunds" >"$WORK/review3.code"; echo $? >"$WORK/review3.rc" ) &
PIDS+=($!)
RID=$(pending_review "$WORK/sluice.yaml")
check "a review is held while the stop begins" test -n "$RID"
stop_gateway "$GATEWAY"
check "sluice serve exits 0 within the bound ($STOP_SECONDS s)" bash -c "test '$STOP_RC' = 0 && test '$STOP_SECONDS' -le 12"
wait_file "$WORK/review3.rc" || true
check "the held request is answered 503 with why, not left hanging" \
  bash -c "test \"\$(cat '$WORK/review3.code')\" = 503 && grep -q session_ended '$WORK/review3.out' && grep -q 'shutting down' '$WORK/review3.out'"
for _ in $(seq 1 50); do kill -0 "$KEEP_PID" 2>/dev/null || break; sleep 0.1; done
check "the kept-alive connection is closed by the stop" bash -c "! kill -0 $KEEP_PID 2>/dev/null && grep -q 'closed by the gateway' '$WORK/keepalive.out'"
"$SLUICE" audit verify --config "$WORK/sluice.yaml" >"$WORK/verify-stop.out" 2>&1 && rc=0 || rc=$?
check "audit verify passes after the stop" test "$rc" = 0

echo "http: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
