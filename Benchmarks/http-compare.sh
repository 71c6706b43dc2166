#!/usr/bin/env bash
# One table, one run: `wrk -t2 -c32` on a small JSON endpoint direct, through Sluice (masking on),
# through nginx as a plain reverse proxy and through the floor (Benchmarks/Sources/NIORelay: the
# same NIOHTTP1 codec on both legs as the gateway, and nothing else); and a large JSON response streamed direct vs through
# Sluice. The upstream is nginx serving static files (so the upstream is never the bottleneck).
# Usage: Benchmarks/http-compare.sh [--seconds 20] [--mib 512] [--connections 32]
# PROFILE=1 also samples the gateway with perf during its wrk run (.build/profiles/).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SECONDS_RUN=20
MIB=512
CONNS=32
while [ $# -gt 0 ]; do
  case $1 in
    --seconds) SECONDS_RUN=$2; shift 2 ;;
    --mib) MIB=$2; shift 2 ;;
    --connections) CONNS=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
bash scripts/install-deps.sh
need=()
command -v wrk >/dev/null || need+=(wrk)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
swift build -c release --product sluice 2>&1 | tail -1
swift build -c release --package-path Benchmarks --product NIORelay 2>&1 | tail -1
SLUICE=$ROOT/.build/release/sluice
RELAY=$ROOT/Benchmarks/.build/release/NIORelay
WORK=$(mktemp -d /tmp/sluice-httpbench.XXXXXX)
chmod 755 "$WORK"
PIDS=()
cleanup() {
  stop_all "${PIDS[@]}"
  rm -rf "$WORK"
}
trap cleanup EXIT
source "$ROOT/Tests/IntegrationTests/lib.sh"
source "$ROOT/Benchmarks/lib.sh"

# The small endpoint: a JSON document with a few people in it (~1 KiB).
mkdir -p "$WORK/www"
python3 - "$WORK/www" "$MIB" <<'PY'
import json, random, sys
root, mib = sys.argv[1], int(sys.argv[2])
random.seed(7)
people = [{"id": i, "name": f"Person {i}", "email": f"user{i}@example.com", "card": "4111 1111 1111 1111",
           "note": "order 4111111111111112 shipped", "city": "Springfield"} for i in range(6)]
open(f"{root}/small.json", "w").write(json.dumps({"customers": people}))
line = json.dumps({"user": "jane.doe@example.com", "card": "4111 1111 1111 1111", "iban": "DE89 3704 0044 0532 0130 00",
                   "text": "lorem ipsum dolor sit amet " * 8}) + "\n"
# Realistic density: one record with PII per ~360 bytes, with plain records between.
plain = json.dumps({"event": "page_view", "path": "/products/123", "ms": 42, "text": "lorem ipsum dolor sit amet " * 6}) + "\n"
block = (line + plain).encode()
with open(f"{root}/big.json", "wb") as out:
    total = mib * 1024 * 1024
    written = 0
    chunk = block * 2048
    while written + len(chunk) <= total:
        out.write(chunk)
        written += len(chunk)
    out.write(chunk[: total - written])
PY

UP_PORT=$(free_port)
PROXY_PORT=$(free_port)
mkdir -p "$WORK/nginx/tmp"
cat >"$WORK/nginx/nginx.conf" <<EOF
worker_processes auto;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $WORK/nginx/tmp; proxy_temp_path $WORK/nginx/tmp; fastcgi_temp_path $WORK/nginx/tmp;
  uwsgi_temp_path $WORK/nginx/tmp; scgi_temp_path $WORK/nginx/tmp;
  default_type application/json;
  sendfile on;
  keepalive_requests 1000000;
  upstream origin { server 127.0.0.1:$UP_PORT; keepalive 64; }
  server { listen 127.0.0.1:$UP_PORT; root $WORK/www; }
  server {
    listen 127.0.0.1:$PROXY_PORT;
    location /api/ { proxy_pass http://origin/; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_buffering off; }
  }
}
EOF
"$NGINX" -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx" >"$WORK/nginx/stdout" 2>"$WORK/nginx/stderr" &
PIDS+=($!)
wait_port "$UP_PORT" && wait_port "$PROXY_PORT" || { cat "$WORK/nginx/stderr" "$WORK/nginx/error.log"; exit 1; }

FLOOR_PORT=$(free_port)
"$RELAY" http "$FLOOR_PORT" 127.0.0.1 "$UP_PORT" >"$WORK/relay.out" 2>&1 &
PIDS+=($!)
wait_port "$FLOOR_PORT"

ADMIN_PORT=$(free_port)
HTTP_PORT=$(free_port)
cat >"$WORK/sluice.yaml" <<EOF
listen: { admin: 127.0.0.1:$ADMIN_PORT, postgres: off, ssh: off, http: 127.0.0.1:$HTTP_PORT, kubernetes: off }
state_dir: $WORK/state
detectors: [$ROOT/corpora]
recording: { output_cap_bytes: 65536 }
connections:
  - name: api
    type: http
    target: http://127.0.0.1:$UP_PORT
    access: { groups: [eng] }
EOF
"$SLUICE" serve --config "$WORK/sluice.yaml" >"$WORK/serve.log" 2>&1 &
GATEWAY=$!
PIDS+=("$GATEWAY")
wait_port "$HTTP_PORT"
TOKEN=$("$SLUICE" token --config "$WORK/sluice.yaml" --user bench --groups eng --ttl 4h)
curl -fsS -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$HTTP_PORT/api/small.json" | grep -q '\[EMAIL\]' || { echo "masking is not on" >&2; exit 1; }

bench() {   # bench URL [header] -> "requests/s mean-ms median-ms p99-ms non-2xx"
  local out
  if [ -n "${2:-}" ]; then
    out=$(wrk -t2 -c"$CONNS" -d"${SECONDS_RUN}s" --latency -H "$2" "$1")
  else
    out=$(wrk -t2 -c"$CONNS" -d"${SECONDS_RUN}s" --latency "$1")
  fi
  echo "$out" >>"$WORK/wrk.log"
  python3 - "$out" <<'PY'
import re, sys
text = sys.argv[1]
def ms(value, unit):
    return float(value) / 1000 if unit == "us" else float(value) * 1000 if unit == "s" else float(value)
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
mean = ms(*re.search(r"Latency\s+([\d.]+)(us|ms|s)", text).groups())
p50 = ms(*re.search(r"50%\s+([\d.]+)(us|ms|s)", text).groups())
p99 = ms(*re.search(r"99%\s+([\d.]+)(us|ms|s)", text).groups())
errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
print(f"{rps:.0f} {mean:.3f} {p50:.3f} {p99:.3f} {errors.group(1) if errors else 0}")
PY
}
echo "wrk direct ..." >&2
read -r D_RPS D_LAT D_P50 D_P99 D_ERR < <(bench "http://127.0.0.1:$UP_PORT/small.json")
echo "wrk nginx proxy ..." >&2
read -r N_RPS N_LAT N_P50 N_P99 N_ERR < <(bench "http://127.0.0.1:$PROXY_PORT/api/small.json")
echo "wrk floor ..." >&2
read -r F_RPS F_LAT F_P50 F_P99 F_ERR < <(bench "http://127.0.0.1:$FLOOR_PORT/small.json")
echo "wrk sluice ..." >&2
profile_start "$GATEWAY"
read -r S_RPS S_LAT S_P50 S_P99 S_ERR < <(bench "http://127.0.0.1:$HTTP_PORT/api/small.json" "Authorization: Bearer $TOKEN")
profile_stop wrk-small-json

stream() {   # stream URL [header] -> seconds
  local start end
  start=$(date +%s.%N)
  if [ -n "${2:-}" ]; then curl -fsS -H "$2" -o /dev/null "$1"; else curl -fsS -o /dev/null "$1"; fi
  end=$(date +%s.%N)
  python3 -c "print($end - $start)"
}
echo "stream $MIB MiB ..." >&2
D_BIG=$(stream "http://127.0.0.1:$UP_PORT/big.json")
N_BIG=$(stream "http://127.0.0.1:$PROXY_PORT/api/big.json")
S_BIG=$(stream "http://127.0.0.1:$HTTP_PORT/api/big.json" "Authorization: Bearer $TOKEN")
RSS=$(awk '/VmHWM/ {print $2}' "/proc/$GATEWAY/status")

python3 - <<EOF
mib = $MIB
d_rps, n_rps, s_rps, f_rps = $D_RPS, $N_RPS, $S_RPS, $F_RPS
d_big, n_big, s_big = $D_BIG, $N_BIG, $S_BIG
print(f"wrk -t2 -c$CONNS -d${SECONDS_RUN}s on ~1 KiB of JSON with 6 people; $MIB MiB of JSON lines (PII every other line); one run")
print()
print("| measurement | direct (nginx static) | through nginx proxy | floor (NIOHTTP1 relay) | through Sluice (masking on) | Sluice ÷ nginx proxy | target |")
print("|---|---|---|---|---|---|---|")
print(f"| requests/s | {d_rps:,.0f} | {n_rps:,.0f} | {f_rps:,.0f} | {s_rps:,.0f} | {s_rps / n_rps:.2f}× ({s_rps / f_rps:.2f}× floor) | ≥ 0.5× (goal 1×) |")
print(f"| mean latency | {$D_LAT:.2f} ms | {$N_LAT:.2f} ms | {$F_LAT:.2f} ms | {$S_LAT:.2f} ms | {$S_LAT / $N_LAT:.2f}× | |")
print(f"| median latency | {$D_P50:.2f} ms | {$N_P50:.2f} ms | {$F_P50:.2f} ms | {$S_P50:.2f} ms | {$S_P50 / $N_P50:.2f}× | |")
print(f"| p99 latency | {$D_P99:.2f} ms | {$N_P99:.2f} ms | {$F_P99:.2f} ms | {$S_P99:.2f} ms | +{$S_P99 - $N_P99:.2f} ms over nginx, +{$S_P99 - $D_P99:.2f} ms over direct | ≤ 1 ms added |")
print(f"| non-2xx answers | {$D_ERR} | {$N_ERR} | {$F_ERR} | {$S_ERR} | | 0 |")
print(f"| {mib} MiB JSON streamed | {mib / d_big / 1024:.2f} GiB/s | {mib / n_big / 1024:.2f} GiB/s | – | {mib / s_big:.0f} MiB/s | {n_big / s_big:.3f}× of nginx | ≥ 0.5 GB/s |")
print(f"| gateway peak RSS | | | | {$RSS / 1024:.0f} MiB | | |")
EOF
