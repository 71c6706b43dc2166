#!/usr/bin/env python3
"""Start-up time of a command: median wall and CPU (user+sys) time of N runs with stdin /dev/null.

    python3 Benchmarks/startup.py --runs 20 -- .build/release/sluice mask
    SLUICE_CACHE_DIR=off python3 Benchmarks/startup.py -- .build/release/sluice mask   # compile every start
"""
import argparse
import os
import statistics
import subprocess
import sys
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=1, help="runs not counted (fill the cache, warm the page cache)")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = [part for part in args.command if part != "--"] or [".build/release/sluice", "mask"]
    walls, cpus = [], []
    for index in range(args.warmup + args.runs):
        start = time.perf_counter()
        child = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        _, status, usage = os.wait4(child.pid, 0)
        wall = (time.perf_counter() - start) * 1000
        if status != 0:
            sys.exit(f"startup: {' '.join(command)} exited with status {status}")
        if index >= args.warmup:
            walls.append(wall)
            cpus.append((usage.ru_utime + usage.ru_stime) * 1000)
    print(f"{' '.join(command)}: wall median {statistics.median(walls):.1f} ms "
          f"(min {min(walls):.1f}, max {max(walls):.1f}), CPU median {statistics.median(cpus):.1f} ms, {args.runs} runs")


if __name__ == "__main__":
    main()
