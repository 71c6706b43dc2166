#!/usr/bin/env bash
# Starts a throw-away PostgreSQL cluster (Debian's postgresql, installed when missing) for tests
# and benchmarks. Source it: `source Tests/IntegrationTests/pg-server.sh; pg_start DIR`.
# Sets PGPORT_TEST, PG_BIN; pg_stop DIR stops it. Users: trust_user (trust), md5_user (md5),
# scram_user (scram-sha-256), passwords in PG_PASSWORD.
set -euo pipefail

PG_PASSWORD=${PG_PASSWORD:-upstream-Secret-42}

pg_install() {
  if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || ! command -v psql >/dev/null; then
    echo "pg-server: installing postgresql" >&2
    local SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends postgresql postgresql-client >/dev/null
  fi
  PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
}

# Runs a command as the cluster's owner (initdb refuses root).
pg_as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

pg_start() {
  local dir=$1
  pg_install
  mkdir -p "$dir"
  [ "$(id -u)" -eq 0 ] && chown postgres "$dir"
  PGPORT_TEST=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
  pg_as_owner "$PG_BIN/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1
  cat >>"$dir/data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $PGPORT_TEST
unix_socket_directories = '$dir'
max_connections = 300
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
  cat >"$dir/data/pg_hba.conf" <<EOF
local all all trust
host all postgres 127.0.0.1/32 trust
host all trust_user 127.0.0.1/32 trust
host all md5_user 127.0.0.1/32 md5
host all scram_user 127.0.0.1/32 scram-sha-256
host all all 127.0.0.1/32 scram-sha-256
EOF
  pg_as_owner "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w start >/dev/null
  psql -h "$dir" -p "$PGPORT_TEST" -U postgres -v ON_ERROR_STOP=1 -q <<EOF
CREATE DATABASE app;
SET password_encryption = 'md5';
CREATE ROLE md5_user LOGIN PASSWORD '$PG_PASSWORD';
SET password_encryption = 'scram-sha-256';
CREATE ROLE scram_user LOGIN PASSWORD '$PG_PASSWORD';
CREATE ROLE trust_user LOGIN;
EOF
}

pg_stop() {
  local dir=$1
  pg_as_owner "$PG_BIN/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
}

# pg_tls DIR CERTS: TLS on the cluster in DIR with a certificate for localhost from a throw-away
# CA (CERTS/ca.crt), and a second, unrelated CA (CERTS/other-ca.crt) for tests that a wrong one
# is refused. Takes effect at the next restart (pg_restart DIR).
pg_tls() {
  local dir=$1 certs=$2
  command -v openssl >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl >/dev/null; }
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj "/CN=Test CA" \
    -keyout "$certs/ca.key" -out "$certs/ca.crt" >/dev/null 2>&1
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=localhost" \
    -keyout "$dir/server.key" -out "$certs/server.csr" >/dev/null 2>&1
  printf 'subjectAltName=DNS:localhost\n' >"$certs/san.ext"
  openssl x509 -req -in "$certs/server.csr" -CA "$certs/ca.crt" -CAkey "$certs/ca.key" -CAcreateserial -days 2 \
    -extfile "$certs/san.ext" -out "$dir/server.crt" >/dev/null 2>&1
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj "/CN=Other CA" \
    -keyout "$certs/other.key" -out "$certs/other-ca.crt" >/dev/null 2>&1
  if [ "$(id -u)" -eq 0 ]; then chown postgres "$dir/server.key" "$dir/server.crt"; fi
  chmod 600 "$dir/server.key"
  printf "ssl = on\nssl_cert_file = '%s'\nssl_key_file = '%s'\n" "$dir/server.crt" "$dir/server.key" >>"$dir/data/postgresql.conf"
}

pg_restart() {
  local dir=$1
  pg_as_owner "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w restart >/dev/null
}
