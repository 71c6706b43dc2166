#!/usr/bin/env bash
# Makes what deploy/compose.yaml mounts, once: the gateways' shared signing key, the store's and
# the target database's passwords, the SSH target's host key and the gateway's key for it.
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p keys && chmod 700 keys
cd keys
# An Ed25519 signing key is 32 random bytes, base64 (what `sluice serve` writes to state_dir).
[ -f signing.key ] || { head -c 32 /dev/urandom | base64 > signing.key; chmod 600 signing.key; }
[ -f store_password ] || { head -c 24 /dev/urandom | base64 | tr -d '/+=' > store_password; chmod 600 store_password; }
[ -f app_db_password ] || { head -c 24 /dev/urandom | base64 | tr -d '/+=' > app_db_password; chmod 600 app_db_password; }
[ -f target-ssh ] || ssh-keygen -q -t ed25519 -N '' -C target-ssh -f target-ssh
[ -f deploy_key ] || ssh-keygen -q -t ed25519 -N '' -C sluice-gateway -f deploy_key
# The configuration with the target's host key (type and base64) in place.
host_key=$(cut -d' ' -f1,2 target-ssh.pub)
sed "s|@TARGET_SSH_HOST_KEY@|$host_key|" ../sluice.yaml > sluice.yaml
# The gateways run as uid 10001 and read these through bind mounts; the folder itself stays 700.
chmod 644 signing.key store_password app_db_password deploy_key sluice.yaml
echo "prepared deploy/compose/keys (keep it out of version control)"
