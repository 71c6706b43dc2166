#!/usr/bin/env bash
# The Kubernetes adapter with the real kubectl against a test API server that speaks the real
# protocol (Tests/IntegrationTests/fake_kube_apiserver.py: discovery, pods, secrets, namespaces,
# watch, exec over WebSocket), since no kube-apiserver can run here.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
SLUICE=${SLUICE:-$ROOT/.build/debug/sluice}
WORK=$(mktemp -d /tmp/sluice-k8s.XXXXXX)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  if [ -n "${SLUICE_IT_KEEP:-}" ]; then rm -rf /tmp/sluice-k8s.last && cp -r "$WORK" /tmp/sluice-k8s.last; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
source "$ROOT/Tests/IntegrationTests/lib.sh"

if ! command -v kubectl >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kubernetes-client >/dev/null
fi
command -v openssl >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl >/dev/null; }

echo "== test API server"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj "/CN=test-apiserver" \
  -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" -keyout "$WORK/api.key" -out "$WORK/api.crt" >/dev/null 2>&1
SA_TOKEN="sa-token-$RANDOM$RANDOM"
printf '%s\n' "$SA_TOKEN" >"$WORK/sa-token"
API_PORT=$(free_port)
start_api() {
  python3 "$ROOT/Tests/IntegrationTests/fake_kube_apiserver.py" --port "$API_PORT" --cert "$WORK/api.crt" --key "$WORK/api.key" \
    --token "$SA_TOKEN" --log "$WORK/api.log" >"$WORK/api.out" 2>&1 &
  API_PID=$!
  PIDS+=("$API_PID")
  wait_port "$API_PORT" || { cat "$WORK/api.out"; exit 1; }
}
start_api

ADMIN_PORT=$(free_port)
K8S_PORT=$(free_port)
cat >"$WORK/sluice.yaml" <<YAML
listen: { admin: 127.0.0.1:$ADMIN_PORT, postgres: off, ssh: off, http: off, kubernetes: 127.0.0.1:$K8S_PORT }
state_dir: $WORK/state
detectors: [$ROOT/corpora]
connections:
  - name: prod-cluster
    type: kubernetes
    target: https://127.0.0.1:$API_PORT
    ca_file: $WORK/api.crt
    credential: { token_file: $WORK/sa-token }
    access: { groups: [sre, dpo] }
    masking: { unmasked_groups: [dpo] }
    guardrails:
      - { match: '^delete namespaces ', action: block, message: "namespaces are deleted by the platform team" }
      - { match: '^create pods/exec prod/', action: review }
      - { class: kubernetes_exec, match: '^rm ', action: block, message: "rm is not allowed in pods" }
    reviews: { approvers: [sre-leads], timeout: 2m }
YAML
"$SLUICE" serve --config "$WORK/sluice.yaml" >"$WORK/serve.log" 2>&1 &
GATEWAY=$!
PIDS+=("$GATEWAY")
wait_port "$K8S_PORT" || { cat "$WORK/serve.log"; exit 1; }
ALICE=$("$SLUICE" token --config "$WORK/sluice.yaml" --user alice --groups sre)
DPO=$("$SLUICE" token --config "$WORK/sluice.yaml" --user dora --groups dpo)
LEAD=$("$SLUICE" token --config "$WORK/sluice.yaml" --user lena --groups sre-leads)
# The kubeconfig names no token: kubectl runs `sluice token --exec`, which answers with
# $SLUICE_TOKEN here (the person's `sluice login` otherwise; access.sh tests that path).
"$SLUICE" kubeconfig prod-cluster --config "$WORK/sluice.yaml" >"$WORK/alice.kubeconfig"
cp "$WORK/alice.kubeconfig" "$WORK/dora.kubeconfig"
export SLUICE_TOKEN=$ALICE
export HOME=$WORK/home
mkdir -p "$HOME"
k() { kubectl --kubeconfig "$WORK/alice.kubeconfig" --request-timeout=30s "$@"; }

echo "== kubeconfig and reads"
check "sluice kubeconfig points at the connection's prefix" grep -q "server: https://127.0.0.1:$K8S_PORT/prod-cluster" "$WORK/alice.kubeconfig"
check "the kubeconfig holds an exec plugin, no token" bash -c "grep -q 'client.authentication.k8s.io/v1' '$WORK/alice.kubeconfig' && ! grep -q 'token:' '$WORK/alice.kubeconfig' && ! grep -qF '$ALICE' '$WORK/alice.kubeconfig'"
OUT=$(k get pods 2>&1 || true)
check "kubectl get pods works through the gateway" bash -c "grep -q 'web-1' <<<'$OUT' && grep -q Running <<<'$OUT'"
OUT=$(k get pod web-1 -o yaml 2>&1 || true)
check "API responses are masked" bash -c "grep -q '\[EMAIL\]' <<<'$OUT' && ! grep -q 'jane.doe@example.com' <<<'$OUT'"
OUT=$(k version 2>&1 || true)
check "kubectl version reaches the API server" bash -c "grep -q 'Server Version: v1.32' <<<'$OUT'"
timeout 20 kubectl --kubeconfig "$WORK/alice.kubeconfig" get pods -w --request-timeout=3s >"$WORK/watch.out" 2>&1 || true
check "a watch streams its events through the gateway" test "$(grep -c web-1 "$WORK/watch.out")" -ge 2

echo "== secrets"
k get secret db-creds -o json >"$WORK/secret.json" 2>&1 || true
check "Secret values are replaced for masked users" python3 - "$WORK/secret.json" <<'PY'
import base64, json, sys
data = json.load(open(sys.argv[1]))["data"]
values = {k: base64.b64decode(v).decode() for k, v in data.items()}
print("      ", values)
# [SECRET]: replaced; [REDACTED]: a value the scan had already masked inside the JSON.
sys.exit(0 if all(v in ("[SECRET]", "[REDACTED]") for v in values.values()) and len(values) == 4 else 1)
PY
check "no Secret value leaves base64-encoded either" bash -c "! grep -q \"\$(printf hunter2-very-secret | base64)\" '$WORK/secret.json'"
SLUICE_TOKEN=$DPO kubectl --kubeconfig "$WORK/dora.kubeconfig" get secret db-creds -o json >"$WORK/secret-dpo.json" 2>&1 || true
check "an unmasked group reads Secret values" python3 -c "
import base64, json, sys
d = json.load(open('$WORK/secret-dpo.json'))['data']
sys.exit(0 if base64.b64decode(d['password']).decode() == 'hunter2-very-secret' else 1)"

echo "== identity and credentials"
check "the API server sees the connection's service-account token" bash -c "grep -q '\"authorization_ok\": true' '$WORK/api.log' && ! grep -q '\"authorization_ok\": false' '$WORK/api.log'"
check "impersonation carries the person's identity" bash -c "grep -q '\"impersonate_user\": \"alice\", \"impersonate_groups\": \[\"sre\"\]' '$WORK/api.log'"
OUT=$(k --as bob get pods 2>&1 || true)
check "kubectl --as is refused" bash -c "grep -qi 'impersonation' <<<'$OUT' && ! grep -q '\"impersonate_user\": \"bob\"' '$WORK/api.log'"
OUT=$(kubectl --kubeconfig "$WORK/alice.kubeconfig" --token not-a-token get pods 2>&1 || true)
check "a bad token is refused" bash -c "grep -qi 'unauthorized\|logged in' <<<'$OUT'"

echo "== guardrails"
OUT=$(k delete ns prod 2>&1 || true)
check "kubectl delete ns prod is blocked with the rule's message" bash -c "grep -q 'namespaces are deleted by the platform team' <<<'$OUT'"
check "the blocked delete never reached the API server" bash -c "! grep -q '\"method\": \"DELETE\"' '$WORK/api.log'"

echo "== exec"
OUT=$(k exec web-1 -- cat /data/customers.txt 2>&1) && rc=0 || rc=$?
echo "$OUT" | head -6 | sed 's/^/      | /'
check "kubectl exec output is masked, exit 0" bash -c "test $rc = 0 && grep -q '\[EMAIL\]' <<<'$OUT' && ! grep -q 'jane.doe' <<<'$OUT' && ! grep -q '268-45-8731' <<<'$OUT'"
k exec web-1 -- sh -c 'exit 3' >/dev/null 2>&1 && rc=0 || rc=$?
check "kubectl exec returns the command's exit code (3)" test "$rc" = 3
OUT=$(echo "hello jane.doe@example.com" | k exec -i web-1 -- cat 2>&1) && rc=0 || rc=$?
check "stdin reaches the pod and the echo is masked" bash -c "test $rc = 0 && test '$OUT' = 'hello [EMAIL]'"
OUT=$( (echo "attached jane.doe@example.com"; sleep 1) | k attach -i web-1 2>/dev/null) && rc=0 || rc=$?
check "kubectl attach is bridged and masked too" bash -c "test $rc = 0 && test '$OUT' = 'attached [EMAIL]'"
BYTES=$(k exec web-1 -- big 5000000 2>/dev/null | wc -c)
check "5 MB of exec output arrives complete" test "$BYTES" = 5000000
OUT=$(k exec web-1 -- rm -rf /data 2>&1) && rc=0 || rc=$?
check "a blocked exec command is refused with the rule's message" bash -c "test $rc != 0 && grep -q 'rm is not allowed in pods' <<<'$OUT'"
check "the blocked command never ran" bash -c "! grep -q '\"exec\": \[\"rm\"' '$WORK/api.log'"
OUT=$(k exec web-1 -- sh -c "r''m -r -f /data" 2>&1) && rc=0 || rc=$?
check "a re-spelled rm inside sh -c meets the same rule (shell-word forms)" bash -c "test $rc != 0 && grep -q 'rm is not allowed in pods' <<<'$OUT'"
check "the re-spelled command never ran" bash -c "! grep -q 'm -r -f /data' '$WORK/api.log'"
# (set -e is on in the subshells too: the exit code is written either way)
( k exec -n prod db-0 -- cat /data/customers.txt >"$WORK/review.out" 2>&1 && echo 0 >"$WORK/review.rc" || echo $? >"$WORK/review.rc" ) &
PIDS+=($!)
RID=$(pending_review "$WORK/sluice.yaml")
check "exec in prod waits for review" bash -c "test -n '$RID' && ! grep -q '\"pod\": \"db-0\"' '$WORK/api.log'"
"$SLUICE" reviews approve "$RID" --config "$WORK/sluice.yaml" --token "$LEAD" >/dev/null
wait_file "$WORK/review.rc" || true
sleep 0.5
check "it runs after approval, masked" bash -c "test \"\$(cat '$WORK/review.rc')\" = 0 && grep -q '\[EMAIL\]' '$WORK/review.out'"

( k exec -n prod db-0 -- true >"$WORK/review2.out" 2>&1 && echo 0 >"$WORK/review2.rc" || echo $? >"$WORK/review2.rc" ) &
PIDS+=($!)
RID=$(pending_review "$WORK/sluice.yaml")
"$SLUICE" reviews deny "$RID" --config "$WORK/sluice.yaml" --token "$LEAD" --reason "not in prod" >/dev/null
wait_file "$WORK/review2.rc" || true
check "a denied exec fails with who denied it and why" bash -c "test \"\$(cat '$WORK/review2.rc')\" != 0 && grep -q 'denied by lena: not in prod' '$WORK/review2.out'"
COUNT=$("$SLUICE" reviews list --config "$WORK/sluice.yaml" --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
check "kubectl's SPDY retry gets the same answer, not a second review" test "$COUNT" = 2
if command -v script >/dev/null; then
  ( sleep 2; printf 'typed jane.doe@example.com\r'; sleep 1; printf '\004' ) |
    timeout 20 script -qfc "stty cols 101 rows 33; kubectl --kubeconfig $WORK/alice.kubeconfig exec -it web-1 -- cat" /dev/null >"$WORK/tty.out" 2>&1 || true
  check "an interactive exec relays the terminal size" grep -q '"resize": \[101, 33\]' "$WORK/api.log"
fi

echo "== the record"
"$SLUICE" audit verify --config "$WORK/sluice.yaml" >"$WORK/verify.out" 2>&1 && rc=0 || rc=$?
check "audit verify passes" test "$rc" = 0
SID=$("$SLUICE" sessions list --config "$WORK/sluice.yaml" --json | python3 -c '
import json, subprocess, sys
for s in json.load(sys.stdin):
    if s["connection"] == "prod-cluster":
        out = subprocess.run([sys.argv[1], "sessions", "show", s["id"], "--config", sys.argv[2]], capture_output=True, text=True).stdout
        if "upgraded" in out and "customers" not in out and "exit_status" in out:
            print(s["id"]); break
' "$SLUICE" "$WORK/sluice.yaml")
"$SLUICE" sessions export "$SID" --config "$WORK/sluice.yaml" --format asciicast >"$WORK/exec.cast" 2>/dev/null || true
if [ ! -x "$ROOT/.build/venv-integration/bin/asciinema" ]; then
  python3 -m venv "$ROOT/.build/venv-integration" 2>/dev/null || true
  "$ROOT/.build/venv-integration/bin/pip" install -q 'asciinema<3'
fi
"$ROOT/.build/venv-integration/bin/asciinema" cat "$WORK/exec.cast" >"$WORK/exec.replay" 2>&1 && rc=0 || rc=$?
check "an exec session exports as asciicast and replays" bash -c "test -n '$SID' && test $rc = 0 && test -s '$WORK/exec.replay'"
check "no raw PII in the store" bash -c "! grep -rqa 'jane.doe@example.com' '$WORK/state/' && ! grep -rqa 'hunter2-very-secret' '$WORK/state/'"
check "no tokens in the gateway log" bash -c "! grep -qF '$SA_TOKEN' '$WORK/serve.log' && ! grep -qF '$ALICE' '$WORK/serve.log'"

echo "kubernetes: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
