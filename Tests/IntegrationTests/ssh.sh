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
  rm -rf "$WORK"
}
trap cleanup EXIT

pass=0
fail=0
ok() { echo "  ok   $*"; pass=$((pass + 1)); }
bad() { echo "  FAIL $*"; fail=$((fail + 1)); }
check() { local name=$1; shift; if "$@"; then ok "$name"; else bad "$name"; fi; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
wait_port() { for _ in $(seq 1 100); do (echo >/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.1; done; return 1; }

need=()
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v ssh >/dev/null || need+=(openssh-client)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
mkdir -p /run/sshd

echo "== upstream sshd"
TARGET_USER=$(id -un)
HOME_DIR=$WORK/home
mkdir -p "$HOME_DIR"
ssh-keygen -q -t ed25519 -N '' -f "$WORK/host_ed25519" -C host
ssh-keygen -q -t ed25519 -N '' -f "$WORK/gateway_key" -C sluice-gateway
cp "$WORK/gateway_key.pub" "$WORK/authorized_keys"
SSHD_PORT=$(free_port)
cat >"$WORK/sshd_config" <<EOF
Port $SSHD_PORT
ListenAddress 127.0.0.1
HostKey $WORK/host_ed25519
AuthorizedKeysFile $WORK/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
StrictModes no
UsePAM no
PidFile $WORK/sshd.pid
Subsystem sftp internal-sftp
EOF
/usr/sbin/sshd -D -e -f "$WORK/sshd_config" 2>"$WORK/sshd.log" &
PIDS+=($!)
wait_port "$SSHD_PORT" || { cat "$WORK/sshd.log"; exit 1; }
HOST_KEY=$(cut -d' ' -f1,2 "$WORK/host_ed25519.pub")

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
lines = []
while sum(map(len, lines)) < 10 * 1024 * 1024:
    lines.append('row %d user%d@example.com ok %s\n' % (len(lines), len(lines), 'x' * random.randint(0, 80)))
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
RID=""
for _ in $(seq 1 100); do
  RID=$("$SLUICE" reviews list --config "$WORK/sluice.yaml" --status pending --json | python3 -c 'import json,sys; r=json.load(sys.stdin); print(r[0]["id"] if r else "")')
  [ -n "$RID" ] && break
  sleep 0.1
done
check "a review is pending" test -n "$RID"
check "the reviewed command has not run yet" test ! -e "$WORK/reviewed"
"$SLUICE" reviews approve "$RID" --config "$WORK/sluice.yaml" --token "$LEAD" >/dev/null
for _ in $(seq 1 100); do [ -f "$WORK/review.rc" ] && break; sleep 0.1; done
check "the reviewed command runs after approval" bash -c "test -e '$WORK/reviewed' && grep -q ran '$WORK/review.out'"

echo "== identity and host keys"
gssh "not-a-token" box true >/dev/null 2>&1 && rc=0 || rc=$?
check "a wrong token is refused" test "$rc" = 255
OUT=$(gssh "$ALICE" wrong-key true 2>&1) && rc=0 || rc=$?
check "a host key mismatch is refused" bash -c "echo '$OUT' | grep -q 'does not match host_key' && test $rc != 0"
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

echo "== the record"
"$SLUICE" audit verify --config "$WORK/sluice.yaml" >"$WORK/verify.out" 2>&1 && rc=0 || rc=$?
check "audit verify passes" test "$rc" = 0
check "no raw PII in the store" bash -c "! grep -rqa 'jane.doe@example.com' '$WORK/state/'"

echo "ssh: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
