#!/usr/bin/env bash
# Checks of the release build of the masking engine, run by `make test`:
# detector examples, the labelled samples, the external accuracy corpus, and bounded memory.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=.build/release/sluice

echo "== sluice detectors test"
"$bin" detectors test

echo "== labelled samples (corpora/samples)"
python3 scripts/score-samples.py --cmd "$bin mask"

eval_dir=../shared/eval
if [ -f "$eval_dir/score.py" ]; then
  echo "== external accuracy corpus ($eval_dir)"
  out=$(python3 "$eval_dir/score.py" --cmd "$bin mask" --chunked --misses 3)
  echo "$out" | tail -n 45
  python3 - "$out" <<'PY'
import re, sys
text = sys.argv[1]
failures = []
overall = re.search(r"^recall=([0-9.]+) decoys_kept=([0-9.]+).*chunk_invariant=(\w+)", text, re.M)
if not overall:
    sys.exit("engine-check: could not read the scorer's summary")
recall, kept, invariant = float(overall.group(1)), float(overall.group(2)), overall.group(3)
if recall < 0.99: failures.append(f"overall recall {recall} < 0.99")
if kept < 0.99: failures.append(f"decoys_kept {kept} < 0.99")
if invariant != "yes": failures.append("chunk_invariant is not yes")
for kind, value in re.findall(r"^(\w+)\s+\d+\s+\d+\s+\d+\s+\d+\s+([0-9.]+)$", text, re.M):
    if float(value) < 0.97: failures.append(f"recall of {kind} {value} < 0.97")
if failures:
    sys.exit("engine-check: " + "; ".join(failures))
print("engine-check: accuracy targets met")
PY
else
  echo "== external accuracy corpus: $eval_dir not found, skipped"
fi

echo "== differential: the engine against the reference engine (every candidate confirmed by Hyperscan)"
# Byte for byte on the labelled samples and the external corpus, in 777-byte reads against one
# reference pass (docs/masking-engine.md, "Engine v2").
diff_dir=$(mktemp -d)
for file in corpora/samples/*.txt "$eval_dir"/corpus/*.txt; do
  [ -f "$file" ] || continue
  SLUICE_MASK_REFERENCE=1 "$bin" mask < "$file" > "$diff_dir/reference"
  "$bin" mask --chunk-size 777 < "$file" > "$diff_dir/engine"
  if ! cmp -s "$diff_dir/reference" "$diff_dir/engine"; then
    echo "engine-check: $file masks differently from the reference engine" >&2
    rm -rf "$diff_dir"
    exit 1
  fi
done
rm -rf "$diff_dir"
echo "engine-check: identical to the reference engine"

echo "== bounded memory: 1 GiB through sluice mask"
python3 scripts/memory-check.py --cmd "$bin mask" --mib "${SLUICE_MEMCHECK_MIB:-1024}" --limit-mib 64
