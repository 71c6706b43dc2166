# Sourced by the compare scripts.
#
# stop_all PID...: stops what a script started. TERM first (nginx's master then stops its
# workers, a wrapper such as runuser passes it on), then KILL to the children and the process:
# a master killed at once leaves its workers running, and a master still alive respawns the
# workers killed before it.
stop_all() {
  local pid
  for pid in "$@"; do kill -TERM "$pid" 2>/dev/null || true; done
  sleep 0.5
  for pid in "$@"; do
    pkill -9 -P "$pid" 2>/dev/null || true
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
}

# With PROFILE=1 in the environment, `profile_start PID` samples
# that process with `perf record -g` until `profile_stop NAME`, which writes the hottest symbols
# (self time, demangled) to .build/profiles/NAME.txt. Without PROFILE, both do nothing.
PROFILE_DIR=${PROFILE_DIR:-$ROOT/.build/profiles}
profile_start() {
  [ -n "${PROFILE:-}" ] || return 0
  if ! command -v perf >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq linux-perf >/dev/null
  fi
  mkdir -p "$PROFILE_DIR"
  perf record -F 999 -g -p "$1" -o "$PROFILE_DIR/perf.data" >/dev/null 2>&1 &
  PROFILER=$!
  sleep 0.5
}
profile_stop() {
  [ -n "${PROFILER:-}" ] || return 0
  kill -INT "$PROFILER" 2>/dev/null || true
  wait "$PROFILER" 2>/dev/null || true
  PROFILER=
  {
    echo "# perf record -F 999 -g on the gateway during: $1 (self time per symbol, >= 0.5%)"
    perf report -i "$PROFILE_DIR/perf.data" --no-children --sort dso,symbol --percent-limit 0.5 --stdio -g none 2>/dev/null |
      grep -v '^#' | grep -v '^$' | swift demangle --simplified | cut -c1-160
  } >"$PROFILE_DIR/$1.txt"
  echo "profile: $PROFILE_DIR/$1.txt" >&2
}
