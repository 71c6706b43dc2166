#!/usr/bin/env bash
# Helpers shared by the integration scripts: a pass/fail tally, free ports and waits.
pass=0
fail=0
ok() { echo "  ok   $*"; pass=$((pass + 1)); }
bad() { echo "  FAIL $*"; fail=$((fail + 1)); }
check() { local name=$1; shift; if "$@"; then ok "$name"; else bad "$name"; fi; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
wait_port() { for _ in $(seq 1 150); do (echo >/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.1; done; return 1; }
wait_http() { for _ in $(seq 1 150); do curl -fsS -o /dev/null "$1" 2>/dev/null && return 0; sleep 0.1; done; return 1; }
# wait_file PATH: until PATH exists (10 s).
wait_file() { for _ in $(seq 1 100); do [ -e "$1" ] && return 0; sleep 0.1; done; return 1; }
# pending_review CONFIG: prints the id of the first pending review once one exists (10 s), else "".
pending_review() {
  local id=""
  for _ in $(seq 1 100); do
    id=$("$SLUICE" reviews list --config "$1" --status pending --json |
      python3 -c 'import json,sys; r=json.load(sys.stdin); print(r[0]["id"] if r else "")')
    [ -n "$id" ] && break
    sleep 0.1
  done
  echo "$id"
}
# stop_gateway PID: SIGTERM, then wait up to 20 s (SIGKILL after that, so a hang fails instead of
# blocking the run); sets STOP_RC (the exit status) and STOP_SECONDS (how long the stop took).
stop_gateway() {
  local pid=$1 start
  start=$(date +%s)
  kill -TERM "$pid"
  for _ in $(seq 1 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
  STOP_RC=0
  wait "$pid" || STOP_RC=$?
  STOP_SECONDS=$(( $(date +%s) - start ))
}
