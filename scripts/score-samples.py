#!/usr/bin/env python3
"""Checks a masking command on the labelled samples of corpora/samples: every planted positive
must be gone from the output and every decoy kept as often as in the input.

    scripts/score-samples.py --cmd '.build/release/sluice mask' [--dir corpora/samples]

Exits non-zero on any miss. Prints counts and the kinds of failures, never more than a value's
first characters.
"""
import argparse
import collections
import json
import os
import shlex
import subprocess
import sys


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--cmd", required=True)
    parser.add_argument("--dir", default="corpora/samples")
    args = parser.parse_args()
    labels = collections.defaultdict(list)
    with open(os.path.join(args.dir, "labels.jsonl"), encoding="utf-8") as f:
        for line in f:
            label = json.loads(line)
            labels[label["file"]].append(label)
    failures = []
    totals = collections.Counter()
    for fname, items in sorted(labels.items()):
        with open(os.path.join(args.dir, fname), "rb") as f:
            text = f.read()
        result = subprocess.run(shlex.split(args.cmd), input=text, capture_output=True, check=False)
        if result.returncode != 0:
            failures.append(f"{fname}: command exited {result.returncode}")
            continue
        out = result.stdout
        planted = collections.Counter(i["value"] for i in items if i["positive"])
        for item in items:
            value = item["value"].encode()
            kind = item["kind"]
            if item["positive"]:
                totals["positives"] += 1
                if out.count(value) > text.count(value) - planted[item["value"]]:
                    failures.append(f"{fname}: positive {kind} not masked ({item['value'][:6]}…)")
            else:
                totals["decoys"] += 1
                if out.count(value) < text.count(value):
                    failures.append(f"{fname}: decoy {kind} lost ({item['value'][:6]}…)")
    print(f"samples: {totals['positives']} positives, {totals['decoys']} decoys, {len(failures)} failures")
    for failure in failures[:40]:
        print("  " + failure)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
