#!/usr/bin/env bash
# The SSH adapter against a real OpenSSH sshd on loopback, with the real ssh client (sshpass
# types the token). Installs openssh-server and sshpass when missing.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
SLUICE=${SLUICE:-$ROOT/.build/debug/sluice}
WORK=$(mktemp -d /tmp/sluice-ssh.XXXXXX)
chmod 755 "$WORK"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  mountpoint -q "$WORK/small" 2>/dev/null && umount "$WORK/small"
  rm -rf "$WORK"
}
trap cleanup EXIT

source "$ROOT/Tests/IntegrationTests/lib.sh"

need=()
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v ssh >/dev/null || need+=(openssh-client)
command -v tmux >/dev/null || need+=(tmux)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
mkdir -p /run/sshd

echo "== upstream sshd"
source "$ROOT/Tests/IntegrationTests/sshd.sh"
sshd_start "$WORK"
PIDS+=("$SSHD_PID")

# A host with only an RSA host key that re-keys every 10 MB, and one that allows only aes256-ctr
# with hmac-sha2-256: older and hardened hosts.
ssh-keygen -q -t rsa -b 3072 -N '' -f "$WORK/host_rsa" -C host-rsa
RSA_PORT=$(free_port)
CTR_PORT=$(free_port)
sed -e "s/^Port .*/Port $RSA_PORT/" -e "s|^HostKey .*|HostKey $WORK/host_rsa|" -e "s|^PidFile .*|PidFile $WORK/sshd-rsa.pid|" \
  "$WORK/sshd_config" >"$WORK/sshd_rsa_config"
printf 'HostKeyAlgorithms rsa-sha2-512,rsa-sha2-256\nRekeyLimit 10M\n' >>"$WORK/sshd_rsa_config"
sed -e "s/^Port .*/Port $CTR_PORT/" -e "s|^PidFile .*|PidFile $WORK/sshd-ctr.pid|" "$WORK/sshd_config" >"$WORK/sshd_ctr_config"
printf 'Ciphers aes256-ctr\nMACs hmac-sha2-256\n' >>"$WORK/sshd_ctr_config"
/usr/sbin/sshd -D -e -f "$WORK/sshd_rsa_config" 2>"$WORK/sshd-rsa.log" &
PIDS+=($!)
/usr/sbin/sshd -D -e -f "$WORK/sshd_ctr_config" 2>"$WORK/sshd-ctr.log" &
PIDS+=($!)
wait_port "$RSA_PORT" && wait_port "$CTR_PORT" || { cat "$WORK/sshd-rsa.log" "$WORK/sshd-ctr.log"; exit 1; }
RSA_KEY=$(cut -d' ' -f1,2 "$WORK/host_rsa.pub")

cat >"$WORK/fixture.txt" <<'EOF'
name: Jane Doe
email: jane.doe@example.com
card: 4111 1111 1111 1111
ssn: 268-45-8731
aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY
order 4111111111111112 is not a card
EOF

ADMIN_PORT=$(free_port)
SSH_PORT=$(free_port)
# Two web servers on loopback, reached through `ssh -L` (one directly, one after a review).
WEB_PORT=$(free_port)
HELD_PORT=$(free_port)
mkdir -p "$WORK/web"
echo "hello through the tunnel" >"$WORK/web/hello.txt"
head -c 5000000 /dev/urandom >"$WORK/web/blob.bin"
(cd "$WORK/web" && exec python3 -m http.server "$WEB_PORT" --bind 127.0.0.1 >"$WORK/web.log" 2>&1) &
PIDS+=($!)
(cd "$WORK/web" && exec python3 -m http.server "$HELD_PORT" --bind 127.0.0.1 >"$WORK/held.log" 2>&1) &
PIDS+=($!)
cat >"$WORK/sluice.yaml" <<EOF
listen: { admin: 127.0.0.1:$ADMIN_PORT, postgres: off, ssh: 127.0.0.1:$SSH_PORT, http: off, kubernetes: off }
state_dir: $WORK/state
detectors: [$ROOT/corpora]
connections:
  - name: box
    type: ssh
    target: 127.0.0.1:$SSHD_PORT
    host_key: "$HOST_KEY"
    credential: { username: $TARGET_USER, private_key_file: $WORK/gateway_key }
    access: { groups: [eng] }
    guardrails:
      - { match: '(?i)\\brm\\s+-rf\\b', action: block, message: "rm -rf is not allowed here" }
      - { match: '^sudo\\b', action: review }
    reviews: { approvers: [sre-leads], timeout: 2m }
  - name: box-dyn
    type: ssh
    target: 127.0.0.1:$SSHD_PORT
    host_key: "$HOST_KEY"
    credential: { username: $TARGET_USER, private_key_file: $WORK/gateway_key }
    access: { groups: [eng] }
    guardrails:
      - { class: dynamic, action: block, message: "dynamic shell is not allowed here" }
  - name: box-noscp
    type: ssh
    target: 127.0.0.1:$SSHD_PORT
    host_key: "$HOST_KEY"
    credential: { username: $TARGET_USER, private_key_file: $WORK/gateway_key }
    access: { groups: [eng] }
    guardrails:
      - { class: sftp, action: block, message: "file transfers are not allowed here" }
      - { class: scp, action: block, message: "file transfers are not allowed here" }
  - name: box-fwd
    type: ssh
    target: 127.0.0.1:$SSHD_PORT
    host_key: "$HOST_KEY"
    credential: { username: $TARGET_USER, private_key_file: $WORK/gateway_key }
    access: { groups: [eng] }
    port_forwarding: ["127.0.0.1:$WEB_PORT", "127.0.0.1:$HELD_PORT"]
    guardrails:
      - { match: '^forward 127\.0\.0\.1:$HELD_PORT\$', action: review }
    reviews: { approvers: [sre-leads], timeout: 2m }
  - name: old-rsa
    type: ssh
    target: 127.0.0.1:$RSA_PORT
    host_key: "$RSA_KEY"
    credential: { username: $TARGET_USER, private_key_file: $WORK/gateway_key }
    access: { groups: [eng] }
  - name: hardened
    type: ssh
    target: 127.0.0.1:$CTR_PORT
    host_key: "$HOST_KEY"
    credential: { username: $TARGET_USER, private_key_file: $WORK/gateway_key }
    access: { groups: [eng] }
  - name: wrong-key
    type: ssh
    target: 127.0.0.1:$SSHD_PORT
    host_key: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGnnhPw7hqFnnr8pnBa5tXuzZ7wmIn4y8S2Uc1ETyYqZ"
    credential: { username: $TARGET_USER, private_key_file: $WORK/gateway_key }
    access: { groups: [eng] }
EOF
"$SLUICE" serve --config "$WORK/sluice.yaml" >"$WORK/serve.log" 2>&1 &
GATEWAY=$!
PIDS+=("$GATEWAY")
wait_port "$SSH_PORT" || { cat "$WORK/serve.log"; exit 1; }
ALICE=$("$SLUICE" token --config "$WORK/sluice.yaml" --user alice --groups eng)
LEAD=$("$SLUICE" token --config "$WORK/sluice.yaml" --user lena --groups sre-leads)
SSH_OPTS=(-p "$SSH_PORT" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR
          -o PreferredAuthentications=keyboard-interactive,password -o PubkeyAuthentication=no -o NumberOfPasswordPrompts=1)
# The real ssh asks for the token through SSH_ASKPASS (its own mechanism; no tty needed).
printf '#!/bin/sh\nprintf "%%s\\n" "$SLUICE_TOKEN"\n' >"$WORK/askpass"
chmod +x "$WORK/askpass"
export SSH_ASKPASS=$WORK/askpass SSH_ASKPASS_REQUIRE=force DISPLAY=:0
gssh() { SLUICE_TOKEN=$1 ssh "${SSH_OPTS[@]}" "$2@127.0.0.1" "${@:3}"; }
# With extra ssh options (they must come before the destination).
gssh_opts() { local token=$1 conn=$2 opt=$3; shift 3; SLUICE_TOKEN=$token ssh "${SSH_OPTS[@]}" -o "$opt" "$conn@127.0.0.1" "$@"; }

if [ -n "${SSH_IT_HOLD:-}" ]; then   # debugging: keep the set-up running and print how to reach it
  declare -p WORK SSH_PORT ALICE SSH_ASKPASS >"$SSH_IT_HOLD"
  sleep 1800
fi

echo "== exec through the gateway"
OUT=$(gssh "$ALICE" box "cat $WORK/fixture.txt" 2>&1) && rc=0 || rc=$?
check "ssh box 'cat fixture' exits 0" test "$rc" = 0
check "output is masked" bash -c "echo '$OUT' | grep -q '\[EMAIL\]' && ! echo '$OUT' | grep -qE 'jane.doe@example.com|4111 1111 1111 1111|268-45-8731|wJalrXUtnFEMI'"
check "decoys are kept" bash -c "echo '$OUT' | grep -q 4111111111111112"
gssh "$ALICE" box false >/dev/null 2>&1 && rc=0 || rc=$?
check "exit code of 'false' is 1" test "$rc" = 1
gssh "$ALICE" box "exit 42" </dev/null >/dev/null 2>&1 && rc=0 || rc=$?
check "exit code with stdin from /dev/null is the command's (42)" test "$rc" = 42
SLUICE_TOKEN=$ALICE ssh -n "${SSH_OPTS[@]}" box@127.0.0.1 "exit 7" >/dev/null 2>&1 && rc=0 || rc=$?
check "exit code with ssh -n is the command's (7)" test "$rc" = 7
OUT=$(echo "piped jane.doe@example.com" | gssh "$ALICE" box "cat" 2>&1)
check "stdin is forwarded and the echo masked" test "$OUT" = "piped [EMAIL]"
python3 -c "
import random
random.seed(5)
lines, size = [], 0
while size < 10 * 1024 * 1024:
    lines.append('row %d user%d@example.com ok %s\n' % (len(lines), len(lines), 'x' * random.randint(0, 80)))
    size += len(lines[-1])
open('$WORK/big.txt', 'w').write(''.join(lines))
"
EXPECTED=$(wc -l <"$WORK/big.txt")
gssh "$ALICE" box "cat $WORK/big.txt" >"$WORK/big.out" 2>/dev/null && rc=0 || rc=$?
check "10 MB of output arrives complete (every line)" test "$(wc -l <"$WORK/big.out")" = "$EXPECTED"
check "10 MB of output is masked" bash -c "! grep -q '@example.com' '$WORK/big.out' && test $rc = 0"

echo "== guardrails"
rm -f "$WORK/marker"
OUT=$(gssh "$ALICE" box "rm -rf $WORK/nothing; touch $WORK/marker" 2>&1) && rc=0 || rc=$?
check "blocked command is refused with its message" bash -c "echo '$OUT' | grep -q 'rm -rf is not allowed here'"
check "blocked command never ran upstream" test ! -e "$WORK/marker"
check "blocked command exits 126" test "$rc" = 126
( gssh "$ALICE" box "sudo -n true 2>/dev/null; touch $WORK/reviewed; echo ran" >"$WORK/review.out" 2>&1; echo $? >"$WORK/review.rc" ) &
PIDS+=($!)
RID=$(pending_review "$WORK/sluice.yaml")
check "a review is pending" test -n "$RID"
check "the reviewed command has not run yet" test ! -e "$WORK/reviewed"
"$SLUICE" reviews approve "$RID" --config "$WORK/sluice.yaml" --token "$LEAD" >/dev/null
wait_file "$WORK/review.rc" || true
check "the reviewed command runs after approval" bash -c "test -e '$WORK/reviewed' && grep -q ran '$WORK/review.out'"

echo "== guardrails see through shell quoting (shell-word parse)"
mkdir -p "$WORK/victim" && touch "$WORK/victim/keep"
V=$WORK/victim
for variant in "r''m -rf $V" "rm -r -f $V" "rm -fr $V" "rm --recursive --force $V" "x=rm;\$x -rf $V" \
               "rm\${IFS}-rf\${IFS}$V" "\\rm -R -f $V" "sudo -n rm -fr $V" "bash -c 'rm -fr $V'" "ls | xargs rm -fr $V"; do
  OUT=$(gssh "$ALICE" box "$variant" 2>&1) && rc=0 || rc=$?
  check "blocked by the rm -rf rule: $variant" bash -c "echo '$OUT' | grep -q 'rm -rf is not allowed here' && test $rc = 126 && test -e '$V/keep'"
done
OUT=$(gssh "$ALICE" box-dyn "x=rm;\$x -rf $V" 2>&1) && rc=0 || rc=$?
check "a dynamic rule blocks x=rm;\$x -rf" bash -c "echo '$OUT' | grep -q 'dynamic shell is not allowed here' && test $rc = 126 && test -e '$V/keep'"
OUT=$(gssh "$ALICE" box-dyn "echo cm0gLXJmIC90bXAveAo= | base64 -d | sh" 2>&1) && rc=0 || rc=$?
check "a dynamic rule blocks base64 -d | sh" bash -c "echo '$OUT' | grep -q 'dynamic shell is not allowed here' && test $rc = 126"
OUT=$(gssh "$ALICE" box-dyn "echo harmless; ls $V" 2>&1) && rc=0 || rc=$?
check "a harmless command still runs under the dynamic rule" bash -c "test $rc = 0 && echo '$OUT' | grep -q harmless && echo '$OUT' | grep -q keep"

echo "== masking across terminal escapes"
# Masked: no 4111 anywhere in the raw bytes (before the fix the raw output kept "4111<ESC>[31m1111…").
card_masked() { ! grep -q 4111 "$1" && grep -q '\*\*\*\*' "$1"; }
gssh "$ALICE" box "printf 'card 4111\\033[31m1111\\033[0m11111111 end\\n'" >"$WORK/esc-card.out" 2>&1 || true
check "a colour code inside a card number: the card is masked" card_masked "$WORK/esc-card.out"
check "and the colour codes are kept" grep -q $'\033\\[31m' "$WORK/esc-card.out"
gssh "$ALICE" box "printf 'mail jane.\\033[1mdoe\\033[0m@example.com end\\n'" >"$WORK/esc-mail.out" 2>&1 || true
check "a colour code inside an email: the email is masked" bash -c \
  "grep -q '\[EMAIL\]' '$WORK/esc-mail.out' && ! grep -q 'jane' '$WORK/esc-mail.out' && ! grep -q 'doe' '$WORK/esc-mail.out'"
SLUICE_TOKEN=$ALICE ssh -tt "${SSH_OPTS[@]}" box@127.0.0.1 "printf 'tty 4111\\033[31m1111\\033[0m11111111 jane.\\033[1mdoe\\033[0m@example.com\\n'" \
  >"$WORK/esc-tty.out" 2>&1 </dev/null || true
check "with a pty (ssh -tt) too" bash -c "grep -q '\[EMAIL\]' '$WORK/esc-tty.out' && ! grep -q 'jane' '$WORK/esc-tty.out' && ! grep -q '4111' '$WORK/esc-tty.out'"

echo "== identity and host keys"
gssh "not-a-token" box true >/dev/null 2>&1 && rc=0 || rc=$?
check "a wrong token is refused" test "$rc" = 255
OUT=$(gssh "$ALICE" wrong-key true 2>&1) && rc=0 || rc=$?
check "a host key mismatch is refused" bash -c "echo '$OUT' | grep -q 'does not match host_key' && test $rc != 0"
MISMATCH_AUDITOR=$("$SLUICE" token --config "$WORK/sluice.yaml" --user aude --groups auditor)
check "and it is a control event (ssh.host_key_mismatch)" bash -c "curl -fsS -H 'Authorization: Bearer $MISMATCH_AUDITOR' 'http://127.0.0.1:$ADMIN_PORT/api/audit/control' | grep -q ssh.host_key_mismatch"
python3 - "$SSH_PORT" <<'EOF'
import os, socket, sys
port = int(sys.argv[1])
for payload in [b"GET / HTTP/1.0\r\n\r\n", os.urandom(300), b"SSH-2.0-x\r\n" + os.urandom(64), b""]:
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    if payload:
        s.sendall(payload)
    s.close()
EOF
OUT=$(gssh "$ALICE" box "echo still here" 2>&1)
check "garbage and dropped handshakes leave the gateway serving" test "$OUT" = "still here"

echo "== file transfers"
SCP_OPTS=(-P "$SSH_PORT" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR
          -o PreferredAuthentications=keyboard-interactive,password -o PubkeyAuthentication=no -o NumberOfPasswordPrompts=1)
SLUICE_TOKEN=$ALICE scp "${SCP_OPTS[@]}" "box@127.0.0.1:$WORK/big.txt" "$WORK/copy.txt" >/dev/null 2>&1 && rc=0 || rc=$?
check "scp download through the gateway when allowed (byte-identical)" bash -c "test $rc = 0 && cmp -s '$WORK/big.txt' '$WORK/copy.txt'"
SLUICE_TOKEN=$ALICE scp "${SCP_OPTS[@]}" "$WORK/fixture.txt" "box@127.0.0.1:$WORK/uploaded.txt" >/dev/null 2>&1 && rc=0 || rc=$?
check "scp upload through the gateway when allowed" bash -c "test $rc = 0 && cmp -s '$WORK/fixture.txt' '$WORK/uploaded.txt'"
SLUICE_TOKEN=$ALICE scp "${SCP_OPTS[@]}" "box-noscp@127.0.0.1:$WORK/fixture.txt" "$WORK/nope.txt" >"$WORK/scp.err" 2>&1 && rc=0 || rc=$?
check "scp refused when blocked" bash -c "test $rc != 0 && test ! -e '$WORK/nope.txt'"
SLUICE_TOKEN=$ALICE scp -O "${SCP_OPTS[@]}" "box-noscp@127.0.0.1:$WORK/fixture.txt" "$WORK/nope2.txt" >/dev/null 2>&1 && rc=0 || rc=$?
check "legacy scp (-O) refused when blocked" bash -c "test $rc != 0 && test ! -e '$WORK/nope2.txt'"

echo "== older and hardened hosts, re-keying"
OUT=$(gssh "$ALICE" old-rsa "echo rsa-ok" 2>&1)
check "a host with only an RSA host key is reachable" test "$OUT" = "rsa-ok"
OUT=$(gssh "$ALICE" hardened "echo ctr-ok" 2>&1)
check "a host allowing only aes256-ctr + hmac-sha2-256 is reachable" test "$OUT" = "ctr-ok"
EXPECTED=$(head -c 200000000 /dev/zero | sha256sum | cut -d' ' -f1)
GOT=$(gssh_opts "$ALICE" box RekeyLimit=10M "head -c 200000000 /dev/zero" 2>/dev/null | sha256sum | cut -d' ' -f1 || true)
check "200 MB download with the client re-keying every 10 MB is byte-identical" test "$GOT" = "$EXPECTED"
GOT=$(head -c 200000000 /dev/zero | gssh_opts "$ALICE" box RekeyLimit=10M "sha256sum" 2>/dev/null | cut -d' ' -f1 || true)
check "200 MB upload with the client re-keying every 10 MB is byte-identical" test "$GOT" = "$EXPECTED"
GOT=$(gssh "$ALICE" old-rsa "head -c 200000000 /dev/zero" 2>/dev/null | sha256sum | cut -d' ' -f1 || true)
check "200 MB download with the upstream re-keying every 10 MB is byte-identical" test "$GOT" = "$EXPECTED"
GOT=$(head -c 200000000 /dev/zero | gssh "$ALICE" old-rsa "sha256sum" 2>"$WORK/upload-rekey.err" | cut -d' ' -f1 || true)
check "200 MB upload with the upstream re-keying every 10 MB is byte-identical" test "$GOT" = "$EXPECTED"
# On a failure, say what the client and the gateway saw (no payload: zeros and status lines).
[ "$GOT" = "$EXPECTED" ] || { echo "      got '$GOT'"; sed 's/^/      ssh: /' "$WORK/upload-rekey.err" | head -5; grep -i 'ssh\|warn\|error' "$WORK/serve.log" | tail -5 | sed 's/^/      gateway: /'; tail -3 "$WORK/sshd-rsa.log" | sed 's/^/      sshd: /'; }

echo "== interactive shell in tmux"
tmux kill-session -t sluice-it 2>/dev/null || true
tmux new-session -d -s sluice-it -x 120 -y 30 -e "SLUICE_TOKEN=$ALICE" -e "SSH_ASKPASS=$SSH_ASKPASS" -e SSH_ASKPASS_REQUIRE=force -e DISPLAY=:0 \
  "ssh -tt ${SSH_OPTS[*]} box@127.0.0.1"
sleep 3
tmux send-keys -t sluice-it "cat $WORK/fixture.txt" Enter
sleep 1.5
tmux send-keys -t sluice-it "rm -rf $WORK/nothing; touch $WORK/marker2" Enter
sleep 1.5
tmux send-keys -t sluice-it "r''m -r -f $WORK/victim; touch $WORK/marker4" Enter
sleep 1.5
tmux send-keys -t sluice-it "printf 'tty%s 4111\\033[31m1111\\033[0m11111111 end\\n' X" Enter
sleep 1.5
tmux send-keys -t sluice-it "sudo -n true 2>/dev/null; touch $WORK/marker3; echo reviewed-line-ran" Enter
RID=$(pending_review "$WORK/sluice.yaml")
sleep 0.5
check "a shell line needing review is held (not run yet)" bash -c "test -n '$RID' && test ! -e '$WORK/marker3'"
"$SLUICE" reviews approve "$RID" --config "$WORK/sluice.yaml" --token "$LEAD" >/dev/null
sleep 1.5
check "the held shell line runs after approval" test -e "$WORK/marker3"
SCREEN=$(tmux capture-pane -p -t sluice-it)
echo "$SCREEN" | tail -12 | sed 's/^/      | /'
check "the shell screen shows masked output" bash -c "echo '$SCREEN' | grep -q '\[EMAIL\]' && ! echo '$SCREEN' | grep -q 'jane.doe@example.com'"
check "a blocked line in the shell is refused and never runs" bash -c "echo '$SCREEN' | grep -q 'rm -rf is not allowed here' && test ! -e '$WORK/marker2'"
check "a typed r''m -r -f line is refused too (shell-word parse)" bash -c "test ! -e '$WORK/marker4' && test -e '$WORK/victim/keep'"
check "a coloured card number on the shell screen is masked" bash -c "echo '$SCREEN' | grep -q 'ttyX \*\*\*\*' && ! echo '$SCREEN' | grep -q 'ttyX 4111'"
tmux send-keys -t sluice-it "exit" Enter
sleep 1
tmux kill-session -t sluice-it 2>/dev/null || true
SID=$("$SLUICE" sessions list --config "$WORK/sluice.yaml" --json | python3 -c '
import json, sys
sessions = [s for s in json.load(sys.stdin) if s["connection"] == "box"]
print(next((s["id"] for s in sessions if s["event_count"] > 3), ""))')
"$SLUICE" sessions export "$SID" --config "$WORK/sluice.yaml" --format asciicast >"$WORK/session.cast"
check "asciicast export has a v2 header" bash -c "head -1 '$WORK/session.cast' | grep -q '\"version\": *2'"
if [ ! -x "$ROOT/.build/venv-integration/bin/asciinema" ]; then
  python3 -m venv "$ROOT/.build/venv-integration" 2>/dev/null || true
  "$ROOT/.build/venv-integration/bin/pip" install -q 'asciinema<3'
fi
"$ROOT/.build/venv-integration/bin/asciinema" cat "$WORK/session.cast" >"$WORK/replay.txt" 2>&1 && rc=0 || rc=$?
check "asciinema cat replays the export (masked)" bash -c "test $rc = 0 && grep -q '\[EMAIL\]' '$WORK/replay.txt'"

echo "== port forwarding"
wait_port "$WEB_PORT" && wait_port "$HELD_PORT"
# tunnel CONNECTION LOCAL_PORT DESTINATION: an `ssh -N -L` in the background.
tunnel() {
  SLUICE_TOKEN=$ALICE ssh "${SSH_OPTS[@]}" -N -o ExitOnForwardFailure=yes -L "$2:$3" "$1@127.0.0.1" 2>"$WORK/tunnel-$2.err" &
  PIDS+=($!)
  wait_port "$2"
}
L1=$(free_port); tunnel box-fwd "$L1" "127.0.0.1:$WEB_PORT"
OUT=$(curl -sS --max-time 10 "http://127.0.0.1:$L1/hello.txt" 2>&1 || true)
check "ssh -L to a listed destination works" test "$OUT" = "hello through the tunnel"
curl -sS --max-time 30 -o "$WORK/blob.copy" "http://127.0.0.1:$L1/blob.bin" 2>/dev/null || true
check "5 MB through the tunnel is byte-identical" cmp -s "$WORK/web/blob.bin" "$WORK/blob.copy"
# `localhost` is not `127.0.0.1` to the allow-list (no DNS is done), so this is refused.
L2=$(free_port); tunnel box-fwd "$L2" "localhost:$WEB_PORT"
BEFORE=$(grep -c 'GET /hello.txt' "$WORK/web.log" || true)
OUT=$(curl -sS --max-time 5 "http://127.0.0.1:$L2/hello.txt" 2>&1 || true)
AFTER=$(grep -c 'GET /hello.txt' "$WORK/web.log" || true)
check "a destination not in port_forwarding is refused" bash -c "test '$OUT' != 'hello through the tunnel' && test '$BEFORE' = '$AFTER'"
L3=$(free_port); tunnel box "$L3" "127.0.0.1:$WEB_PORT"
OUT=$(curl -sS --max-time 5 "http://127.0.0.1:$L3/hello.txt" 2>&1 || true)
AFTER2=$(grep -c 'GET /hello.txt' "$WORK/web.log" || true)
check "a connection without port_forwarding refuses every forward" bash -c "test '$OUT' != 'hello through the tunnel' && test '$AFTER' = '$AFTER2'"
L4=$(free_port); tunnel box-fwd "$L4" "127.0.0.1:$HELD_PORT"
( curl -sS --max-time 60 "http://127.0.0.1:$L4/hello.txt" >"$WORK/held.out" 2>&1; echo $? >"$WORK/held.rc" ) &
PIDS+=($!)
RID=$(pending_review "$WORK/sluice.yaml")
check "a forward needing review is held" bash -c "test -n '$RID' && ! grep -q 'GET /hello.txt' '$WORK/held.log'"
"$SLUICE" reviews approve "$RID" --config "$WORK/sluice.yaml" --token "$LEAD" >/dev/null
wait_file "$WORK/held.rc" || true
check "the held forward opens after approval" bash -c "grep -qx 'hello through the tunnel' '$WORK/held.out'"
OUT=$(curl -sS --max-time 10 "http://127.0.0.1:$L4/hello.txt" 2>&1 || true)
check "an approved destination stays open for the session" test "$OUT" = "hello through the tunnel"
"$SLUICE" sessions list --config "$WORK/sluice.yaml" --json | python3 -c '
import json, subprocess, sys
ids = [s["id"] for s in json.load(sys.stdin) if s["connection"] == "box-fwd"]
for i in ids:
    print(subprocess.run([sys.argv[1], "sessions", "show", i, "--config", sys.argv[2]], capture_output=True, text=True).stdout)
' "$SLUICE" "$WORK/sluice.yaml" >"$WORK/fwd-records.json"
forward_marker() {  # forward_marker KEY VALUE: a forward marker in the box-fwd records has KEY
  python3 - "$WORK/fwd-records.json" "$WEB_PORT" "$1" <<'PY'
import json, sys
text, port, key = open(sys.argv[1]).read(), sys.argv[2], sys.argv[3]
decoder, docs, i = json.JSONDecoder(), [], 0
while i < len(text):
    if text[i].isspace(): i += 1; continue
    doc, i = decoder.raw_decode(text, i); docs.append(doc)
marks = [json.loads(e["data"]) for d in docs for e in d.get("events", []) if e["kind"] == "m"]
sys.exit(0 if any(m.get("forward") == "127.0.0.1:" + port and key in m for m in marks) else 1)
PY
}
check "forwards are recorded with their destination" forward_marker opened
check "closed forwards are recorded with their sizes" forward_marker bytes_down
check "a refused forward is recorded with its reason" grep -q "not in port_forwarding" "$WORK/fwd-records.json"

echo "== outsiders: connections still logging in are bounded per source, failed logins throttled"
python3 - "$SSH_PORT" "$GATEWAY" >"$WORK/slowloris.out" 2>&1 <<'EOF' && rc=0 || rc=$?
import socket, sys, time
port, pid = int(sys.argv[1]), sys.argv[2]
def threads():
    return int(next(l.split()[1] for l in open("/proc/%s/status" % pid) if l.startswith("Threads:")))
before = threads()
sockets = [socket.create_connection(("127.0.0.1", port), timeout=15) for _ in range(60)]
time.sleep(1)
during = threads()
banners = refused = 0
for s in sockets:
    s.settimeout(3)
    try:
        data = s.recv(64)
    except socket.timeout:
        data = b"?"
    if data.startswith(b"SSH-"):
        banners += 1
    elif data == b"":
        refused += 1
print("60 silent connections: %d got a banner, %d closed at once; threads %d before, %d with them open" % (banners, refused, before, during))
started = time.monotonic()
for s in sockets:
    try:
        while s.recv(4096):
            pass
    except OSError:
        pass
    s.close()
print("the admitted ones were closed after %.1f s" % (time.monotonic() - started))
sys.exit(0 if banners == 32 and refused == 28 and during - before <= 40 else 1)
EOF
sed 's/^/      /' "$WORK/slowloris.out"
check "32 silent connections from one address are admitted (limits.unauthenticated_per_source), the other 28 closed with no thread" test "$rc" = 0
OUT=$(gssh "$ALICE" box "echo still serving" 2>&1) && rc=0 || rc=$?
check "and the gateway keeps serving logins" test "$OUT" = "still serving"
for attempt in $(seq 1 14); do gssh "bad-token-$attempt" box true >/dev/null 2>&1 || true; done
curl -fsS "http://127.0.0.1:$ADMIN_PORT/metrics" >"$WORK/ssh-metrics.txt"
grep -h 'sluice_logins_throttled_total\|sluice_logins_failed_total' "$WORK/ssh-metrics.txt" | sed 's/^/      /'
check "14 bad SSH logins in a row lock the address out (sluice_logins_throttled_total)" grep -q '^sluice_logins_throttled_total{purpose="ssh"}' "$WORK/ssh-metrics.txt"
sleep 6
OUT=$(gssh "$ALICE" box "echo after lockout" 2>&1) && rc=0 || rc=$?
check "the lockout ends after 5 s" test "$OUT" = "after lockout"

echo "== the record"
"$SLUICE" audit verify --config "$WORK/sluice.yaml" >"$WORK/verify.out" 2>&1 && rc=0 || rc=$?
check "audit verify passes" test "$rc" = 0
check "no raw PII in the store" bash -c "! grep -rqa 'jane.doe@example.com' '$WORK/state/'"

echo "== graceful stop with an SSH channel open"
( gssh "$ALICE" box "echo started; sleep 60" >"$WORK/stop-ssh.out" 2>"$WORK/stop-ssh.err" && echo 0 >"$WORK/stop-ssh.rc" || echo $? >"$WORK/stop-ssh.rc" ) &
for _ in $(seq 1 100); do grep -q started "$WORK/stop-ssh.out" 2>/dev/null && break; sleep 0.1; done
check "a command is running through the gateway" grep -q started "$WORK/stop-ssh.out"
stop_gateway "$GATEWAY"
check "sluice serve exits 0 within the bound ($STOP_SECONDS s)" bash -c "test '$STOP_RC' = 0 && test '$STOP_SECONDS' -le 12"
wait_file "$WORK/stop-ssh.rc" || true
check "the ssh client ends instead of hanging" test -s "$WORK/stop-ssh.rc"
check "and is told why" grep -q "sluice: session ended: gateway shutting down" "$WORK/stop-ssh.err"
"$SLUICE" audit verify --config "$WORK/sluice.yaml" >"$WORK/verify-stop.out" 2>&1 && rc=0 || rc=$?
check "audit verify passes after the stop, the open session sealed" test "$rc" = 0

echo "== disk full: the open session stops, the gap is marked, recording recovers by itself (issue 14, finding 4)"
# The gateway's state on an 8 MB tmpfs (root mounts it here and in CI; elsewhere this part is skipped).
mkdir -p "$WORK/small"
if mount -t tmpfs -o size=8m tmpfs "$WORK/small" 2>/dev/null; then
  sed "s|^state_dir: .*|state_dir: $WORK/small/state|" "$WORK/sluice.yaml" >"$WORK/small.yaml"
  "$SLUICE" serve --config "$WORK/small.yaml" >"$WORK/small-serve.log" 2>&1 &
  SMALL=$!
  PIDS+=("$SMALL")
  wait_port "$SSH_PORT" || { cat "$WORK/small-serve.log"; exit 1; }
  ALICE_SMALL=$("$SLUICE" token --config "$WORK/small.yaml" --user alice --groups eng)
  # 2,000 lines, a pause while the disk fills, then 58,000 more.
  ( gssh "$ALICE_SMALL" box 'for i in $(seq 1 2000); do echo "line $i of the report"; done; sleep 3; for i in $(seq 2001 60000); do echo "line $i of the report"; done' \
      >"$WORK/full.out" 2>"$WORK/full.err" && echo 0 >"$WORK/full.rc" || echo $? >"$WORK/full.rc" ) &
  for _ in $(seq 1 100); do grep -q "line 2000 " "$WORK/full.out" 2>/dev/null && break; sleep 0.1; done
  dd if=/dev/zero of="$WORK/small/filler" bs=64k >/dev/null 2>&1 || true
  wait_file "$WORK/full.rc" || sleep 10
  LINES=$(wc -l <"$WORK/full.out")
  echo "      the client got $LINES of 60,000 lines; it was told: $(tr -d '\r' <"$WORK/full.err" | grep sluice: | head -1)"
  check "the running command stops instead of delivering all 60,000 lines unrecorded" test "$LINES" -lt 60000
  check "the client is told that recording failed" grep -q "sluice: session ended: recording failed" "$WORK/full.err"
  OUT=$(gssh "$ALICE_SMALL" box "echo refused" 2>&1) && rc=0 || rc=$?
  check "a new session is refused while the disk is full" test "$rc" != 0
  rm -f "$WORK/small/filler"
  sleep 2
  OUT=$(gssh "$ALICE_SMALL" box "echo recovered" 2>&1) && rc=0 || rc=$?
  check "once space returns, sessions work again without a restart" test "$OUT" = recovered
  AUDITOR=$("$SLUICE" token --config "$WORK/small.yaml" --user aude --groups auditor)
  curl -fsS -H "Authorization: Bearer $AUDITOR" "http://127.0.0.1:$ADMIN_PORT/api/audit/control" >"$WORK/full-control.json" || true
  check "the recovery is a control event" grep -q recording.recovered "$WORK/full-control.json"
  stop_gateway "$SMALL"
  "$SLUICE" audit verify --config "$WORK/small.yaml" >"$WORK/verify-full.out" 2>&1 && rc=0 || rc=$?
  sed 's/^/      /' "$WORK/verify-full.out" | grep -v '^      unsealed'
  check "audit verify passes: the gap is the gateway's own marker, not tampering" test "$rc" = 0
  check "and reports the session as a recording failure" grep -q "^recording failed: session" "$WORK/verify-full.out"
  umount "$WORK/small"
else
  echo "  SKIP the disk-full checks need root to mount a tmpfs"
fi

echo "ssh: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
