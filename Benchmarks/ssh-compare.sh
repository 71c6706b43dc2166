#!/usr/bin/env bash
# One table, one run: `ssh host 'cat 256 MB file' > /dev/null` direct vs through Sluice (masking
# on), and the mean time of N sequential `ssh host true`. Usage: Benchmarks/ssh-compare.sh [--mib 256] [--logins 100]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
MIB=256
LOGINS=100
while [ $# -gt 0 ]; do
  case $1 in
    --mib) MIB=$2; shift 2 ;;
    --logins) LOGINS=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
bash scripts/install-deps.sh
[ -x /usr/sbin/sshd ] || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server >/dev/null; }
mkdir -p /run/sshd
swift build -c release --product sluice 2>&1 | tail -1
SLUICE=$ROOT/.build/release/sluice
WORK=$(mktemp -d /tmp/sluice-sshbench.XXXXXX)
chmod 755 "$WORK"
PIDS=()
cleanup() {
  stop_all "${PIDS[@]}"
  rm -rf "$WORK"
}
trap cleanup EXIT
source "$ROOT/Tests/IntegrationTests/lib.sh"
source "$ROOT/Benchmarks/lib.sh"

ssh-keygen -q -t ed25519 -N '' -f "$WORK/host" -C host
ssh-keygen -q -t ed25519 -N '' -f "$WORK/key" -C key
cp "$WORK/key.pub" "$WORK/authorized_keys"
SSHD_PORT=$(free_port)
cat >"$WORK/sshd_config" <<EOF
Port $SSHD_PORT
ListenAddress 127.0.0.1
HostKey $WORK/host
AuthorizedKeysFile $WORK/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
StrictModes no
UsePAM no
PidFile $WORK/sshd.pid
EOF
/usr/sbin/sshd -D -e -f "$WORK/sshd_config" 2>"$WORK/sshd.log" &
PIDS+=($!)
wait_port "$SSHD_PORT"

# Realistic text: the same generator as the engine benchmark (PII and decoys every ~300 bytes).
python3 scripts/gen-corpus.py --help >/dev/null 2>&1 && python3 scripts/gen-corpus.py --out "$WORK/corpus" --bytes $((MIB * 1024 * 1024 / 4)) --seed 11 --density 300 --no-labels >/dev/null 2>&1 || true
if ls "$WORK/corpus"/*.txt >/dev/null 2>&1; then
  cat "$WORK/corpus"/*.txt >"$WORK/data.txt"
  while [ "$(stat -c %s "$WORK/data.txt")" -lt $((MIB * 1024 * 1024)) ]; do cat "$WORK/corpus"/*.txt >>"$WORK/data.txt"; done
  truncate -s $((MIB * 1024 * 1024)) "$WORK/data.txt"
else
  head -c $((MIB * 1024 * 1024)) /dev/urandom | base64 -w 100 | head -c $((MIB * 1024 * 1024)) >"$WORK/data.txt"
fi

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
    host_key: "$(cut -d' ' -f1,2 "$WORK/host.pub")"
    credential: { username: $(id -un), private_key_file: $WORK/key }
    access: { groups: [eng] }
EOF
"$SLUICE" serve --config "$WORK/sluice.yaml" >"$WORK/serve.log" 2>&1 &
PIDS+=($!)
wait_port "$SSH_PORT"
TOKEN=$("$SLUICE" token --config "$WORK/sluice.yaml" --user bench --groups eng --ttl 4h)
printf '#!/bin/sh\nprintf "%%s\\n" "$SLUICE_TOKEN"\n' >"$WORK/askpass"
chmod +x "$WORK/askpass"
COMMON=(-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR)
direct() { ssh "${COMMON[@]}" -p "$SSHD_PORT" -i "$WORK/key" -o IdentitiesOnly=yes "$(id -un)@127.0.0.1" "$@"; }
gated() {
  SLUICE_TOKEN=$TOKEN SSH_ASKPASS=$WORK/askpass SSH_ASKPASS_REQUIRE=force DISPLAY=:0 \
    ssh "${COMMON[@]}" -p "$SSH_PORT" -o PubkeyAuthentication=no -o PreferredAuthentications=keyboard-interactive box@127.0.0.1 "$@"
}
seconds() { local start end; start=$(date +%s.%N); "$@" >/dev/null 2>&1; end=$(date +%s.%N); echo "$end - $start" | bc; }

echo "cat $MIB MiB ..." >&2
D_CAT=$(seconds direct "cat $WORK/data.txt")
S_CAT=$(seconds gated "cat $WORK/data.txt")
echo "$LOGINS logins ..." >&2
D_LOGIN=$(seconds bash -c "for i in \$(seq 1 $LOGINS); do ssh ${COMMON[*]} -p $SSHD_PORT -i $WORK/key -o IdentitiesOnly=yes $(id -un)@127.0.0.1 true; done")
S_LOGIN=$(seconds bash -c "for i in \$(seq 1 $LOGINS); do SLUICE_TOKEN=$TOKEN SSH_ASKPASS=$WORK/askpass SSH_ASKPASS_REQUIRE=force DISPLAY=:0 ssh ${COMMON[*]} -p $SSH_PORT -o PubkeyAuthentication=no -o PreferredAuthentications=keyboard-interactive box@127.0.0.1 true; done")

python3 - <<EOF
mib = $MIB
d_cat, s_cat = float("$D_CAT"), float("$S_CAT")
d_login, s_login = float("$D_LOGIN") / $LOGINS, float("$S_LOGIN") / $LOGINS
print("| measurement | direct | through Sluice (masking on) | Sluice ÷ direct | target |")
print("|---|---|---|---|---|")
print(f"| ssh 'cat {mib} MiB text' > /dev/null | {mib / d_cat:,.0f} MiB/s | {mib / s_cat:,.0f} MiB/s | {d_cat / s_cat:.2f}× | ≥ 0.5× |")
print(f"| mean time of ssh host true ({$LOGINS} sequential) | {d_login * 1000:,.0f} ms | {s_login * 1000:,.0f} ms | {s_login / d_login:.2f}× | ≤ 2× |")
EOF
