#!/usr/bin/env python3
"""Checks a masking command on the labelled samples of corpora/samples: every planted positive
must be gone from the output, every decoy kept as often as in the input, and every output must
have as many lines as its input, less the lines inside planted multi-line values such as PEM
blocks, which become one label (no other replacement joins or splits lines).

    scripts/score-samples.py --cmd '.build/release/sluice mask' [--dir corpora/samples] [--files 'csv*']

Prints recall and decoys kept per kind and per file, and exits non-zero on any miss. Never prints
more than a value's first characters.
"""
import argparse
import collections
import fnmatch
import json
import os
import shlex
import subprocess
import sys


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--cmd", required=True)
    parser.add_argument("--dir", default="corpora/samples")
    parser.add_argument("--files", default="*", help="glob on sample file names")
    parser.add_argument("--quiet", action="store_true", help="only the summary line and failures")
    args = parser.parse_args()
    labels = collections.defaultdict(list)
    with open(os.path.join(args.dir, "labels.jsonl"), encoding="utf-8") as f:
        for line in f:
            label = json.loads(line)
            labels[label["file"]].append(label)
    failures = []
    totals = collections.Counter()
    kinds = collections.defaultdict(collections.Counter)  # (positive, kind) -> n, ok
    files = collections.defaultdict(collections.Counter)
    for fname, items in sorted(labels.items()):
        if not fnmatch.fnmatch(fname, args.files):
            continue
        with open(os.path.join(args.dir, fname), "rb") as f:
            text = f.read()
        result = subprocess.run(shlex.split(args.cmd), input=text, capture_output=True, check=False)
        if result.returncode != 0:
            failures.append(f"{fname}: command exited {result.returncode}")
            continue
        out = result.stdout
        # A multi-line value (a PEM block) becomes one label; every other replacement keeps the lines.
        lines_in = text.count(b"\n") - sum(i["value"].count("\n") for i in items if i["positive"])
        lines_out = out.count(b"\n")
        if lines_in != lines_out:
            failures.append(f"{fname}: {lines_in} lines in, {lines_out} out (a replacement changed the line structure)")
        planted = collections.Counter(i["value"] for i in items if i["positive"])
        for item in items:
            value = item["value"].encode()
            kind = item["kind"]
            if item["positive"]:
                ok = out.count(value) <= text.count(value) - planted[item["value"]]
                if not ok:
                    failures.append(f"{fname}: positive {kind} not masked ({item['value'][:6]}…)")
            else:
                ok = out.count(value) >= text.count(value)
                if not ok:
                    failures.append(f"{fname}: decoy {kind} lost ({item['value'][:6]}…)")
            key = "positives" if item["positive"] else "decoys"
            totals[key] += 1
            kinds[item["positive"], kind]["n"] += 1
            kinds[item["positive"], kind]["ok"] += ok
            files[fname][key] += 1
            files[fname][key + "_ok"] += ok
    if not args.quiet:
        print(f"{'positive kind':<24}{'n':>6}{'recall':>8}")
        for (positive, kind), c in sorted(kinds.items(), key=lambda x: (not x[0][0], x[0][1])):
            if positive:
                print(f"{kind:<24}{c['n']:>6}{c['ok'] / c['n']:>8.3f}")
        print(f"\n{'decoy kind':<24}{'n':>6}{'kept':>8}")
        for (positive, kind), c in sorted(kinds.items()):
            if not positive:
                print(f"{kind:<24}{c['n']:>6}{c['ok'] / c['n']:>8.3f}")
        print()
        for fname, c in sorted(files.items()):
            print(f"{fname:<24}recall={c['positives_ok'] / max(1, c['positives']):.3f} decoys_kept={c['decoys_ok'] / max(1, c['decoys']):.3f}")
    print(f"samples: {totals['positives']} positives, {totals['decoys']} decoys, {len(failures)} failures")
    for failure in failures[:40]:
        print("  " + failure)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
