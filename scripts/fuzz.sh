#!/usr/bin/env bash
# Builds the libFuzzer harnesses (Fuzz/, docs/fuzzing.md) with AddressSanitizer and runs each for
# FUZZ_SECONDS (default 60) from its seed corpus in Fuzz/Corpus. New inputs go to
# .build/fuzz/corpus/TARGET (not the repository); a crash leaves .build/fuzz/crash-TARGET-* and
# makes the script fail. FUZZ_TARGETS picks harnesses (default: all).
#   bash scripts/fuzz.sh                    # 60 s each
#   FUZZ_SECONDS=20 bash scripts/fuzz.sh    # the CI smoke
#   FUZZ_TARGETS="sql masker" FUZZ_SECONDS=600 bash scripts/fuzz.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SECONDS_EACH=${FUZZ_SECONDS:-60}
TARGETS=${FUZZ_TARGETS:-"pg-wire pg-proxy sql shell http http-body kubernetes jwt config masker"}
OUT=$ROOT/.build/fuzz
mkdir -p "$OUT"

echo "== building the harnesses (-sanitize=fuzzer,address)"
FLAGS=(--package-path Fuzz --product SluiceFuzz -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library)
if ! swift build "${FLAGS[@]}" >"$OUT/build.log" 2>&1; then
  grep -E "error" "$OUT/build.log" | grep -v "Cannot export local symbol" | head -20 >&2
  echo "fuzz: the harnesses did not build (see $OUT/build.log)" >&2
  exit 1
fi
grep -E "warning: " "$OUT/build.log" | grep -v -e "swift-distributed-tracing" -e "Cannot export local symbol" || true
BIN=$(swift build "${FLAGS[@]}" --show-bin-path)/SluiceFuzz
[ -x "$BIN" ] || { echo "fuzz: the harness did not build" >&2; exit 1; }

failed=0
printf '%-11s %8s %10s %8s %6s  %s\n' target seconds runs "exec/s" cov result
for target in $TARGETS; do
  corpus=$OUT/corpus/$target
  mkdir -p "$corpus"
  log=$OUT/$target.log
  FUZZ_TARGET=$target SLUICE_CORPORA=$ROOT/corpora ASAN_OPTIONS=detect_leaks=0 \
    "$BIN" "$corpus" "$ROOT/Fuzz/Corpus/$target" -max_total_time="$SECONDS_EACH" -timeout=20 -rss_limit_mb=6144 \
    -max_len=8192 -print_final_stats=1 -artifact_prefix="$OUT/crash-$target-" >"$log" 2>&1 && rc=0 || rc=$?
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
  speed=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || echo 0)
  if [ "$rc" = 0 ]; then result=ok; else result="FAILED (exit $rc, see $log)"; failed=1; fi
  printf '%-11s %8s %10s %8s %6s  %s\n' "$target" "$SECONDS_EACH" "$runs" "$speed" "$cov" "$result"
  if [ "$rc" != 0 ]; then grep -E "ERROR|Fatal error|SUMMARY|Test unit written" "$log" | head -5 | sed 's/^/    /'; fi
done
exit $failed
