#!/usr/bin/env python3
"""Streams N MiB (default 1024) of sample text through a masking command and checks that its
peak resident memory stays under a limit (default 64 MiB). The input is generated on the fly
and fed through a pipe, so the command cannot read it all first.

    scripts/memory-check.py --cmd '.build/release/sluice mask' [--mib 1024] [--limit-mib 64]
"""
import argparse
import glob
import os
import resource
import shlex
import subprocess
import sys
import threading
import time


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--cmd", required=True)
    parser.add_argument("--mib", type=int, default=1024)
    parser.add_argument("--limit-mib", type=int, default=64)
    parser.add_argument("--samples", default="corpora/samples")
    args = parser.parse_args()
    block = b"".join(open(p, "rb").read() for p in sorted(glob.glob(os.path.join(args.samples, "*.txt"))))
    # One line of several MiB without a newline, then ordinary text.
    long_line = (b"x" * 1021 + b"ab ") * 4096
    total = args.mib * 1024 * 1024
    proc = subprocess.Popen(shlex.split(args.cmd), stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    received = [0]

    def drain():
        while True:
            chunk = proc.stdout.read(1 << 20)
            if not chunk:
                break
            received[0] += len(chunk)

    reader = threading.Thread(target=drain)
    reader.start()
    start = time.time()
    sent = 0
    proc.stdin.write(long_line)
    sent += len(long_line)
    while sent < total:
        piece = block[: min(len(block), total - sent)]
        proc.stdin.write(piece)
        sent += len(piece)
    proc.stdin.close()
    reader.join()
    code = proc.wait()
    elapsed = time.time() - start
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(f"memory-check: {sent / 2**20:.0f} MiB in {elapsed:.1f}s ({sent / 2**20 / elapsed:.0f} MiB/s), "
          f"out {received[0] / 2**20:.0f} MiB, peak RSS {peak_kib / 1024:.1f} MiB (limit {args.limit_mib} MiB), exit {code}")
    if code != 0 or peak_kib > args.limit_mib * 1024:
        sys.exit(1)


if __name__ == "__main__":
    main()
