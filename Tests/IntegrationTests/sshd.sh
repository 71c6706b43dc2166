#!/usr/bin/env bash
# Starts a throw-away OpenSSH server on loopback for tests and the soak. Source it after lib.sh:
# `sshd_start DIR` generates a host key and the gateway's client key (DIR/gateway_key), starts
# /usr/sbin/sshd on a free port that accepts only that key, and sets SSHD_PORT, HOST_KEY (the
# host key line for `host_key:`), TARGET_USER and SSHD_PID. The caller stops SSHD_PID.
set -euo pipefail

sshd_start() {
  local dir=$1
  TARGET_USER=$(id -un)
  mkdir -p /run/sshd
  ssh-keygen -q -t ed25519 -N '' -f "$dir/host_ed25519" -C host
  ssh-keygen -q -t ed25519 -N '' -f "$dir/gateway_key" -C sluice-gateway
  cp "$dir/gateway_key.pub" "$dir/authorized_keys"
  SSHD_PORT=$(free_port)
  cat >"$dir/sshd_config" <<CONF
Port $SSHD_PORT
ListenAddress 127.0.0.1
HostKey $dir/host_ed25519
AuthorizedKeysFile $dir/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
StrictModes no
UsePAM no
PidFile $dir/sshd.pid
Subsystem sftp internal-sftp
MaxStartups 400:30:800
MaxSessions 50
CONF
  /usr/sbin/sshd -D -e -f "$dir/sshd_config" 2>"$dir/sshd.log" &
  SSHD_PID=$!
  wait_port "$SSHD_PORT" || { cat "$dir/sshd.log"; return 1; }
  HOST_KEY=$(cut -d' ' -f1,2 "$dir/host_ed25519.pub")
}
