#!/usr/bin/env python3
"""Sums one training step's kernels from an ncu CSV (scripts/gpu-profile.sh) by kernel name.

A step is cut at the fused cross-entropy forward: the head runs it once per chunk of rows, so
launches closer than GAP kernels to the previous one belong to the same step, and the first
launch of each group starts a step. The kernels from the second-to-last group's start to the
last group's start are one full cycle (head, backward, optimizer, next forward). Prints a Markdown table of the
kernels by total time, with counts and shares, and the step's total GPU time.
"""
import csv
import gzip
import re
import sys
from collections import defaultdict

UNITS = {"nsecond": 1e-6, "ns": 1e-6, "usecond": 1e-3, "us": 1e-3, "msecond": 1.0, "ms": 1.0,
         "second": 1e3, "s": 1e3}


def rows(path):
    opener = gzip.open if path.endswith(".gz") else open  # results in bench/ are gzipped
    with opener(path, "rt", newline="") as f:
        lines = [l for l in f if l.startswith('"')]
    for r in csv.DictReader(lines):
        if r.get("Metric Name") != "gpu__time_duration.sum":
            continue
        value = float(r["Metric Value"].replace(",", ""))
        yield r["Kernel Name"], value * UNITS.get(r.get("Metric Unit", "ns"), 1e-6)


def short(name):
    name = re.sub(r"\(.*", "", name)  # drop argument lists
    return name.split("<")[0] if not name.startswith("void ") else name[5:].split("<")[0]


GAP = 50


def main(path, marker="cross_entropy_fwd"):
    ks = list(rows(path))
    hits = [i for i, (n, _) in enumerate(ks) if marker in n]
    cuts = [i for j, i in enumerate(hits) if j == 0 or i - hits[j - 1] > GAP]
    print(f"{len(ks)} kernels profiled; {len(hits)} launches of {marker} in {len(cuts)} steps")
    if len(cuts) < 2:
        print("not enough steps to cut one out; summing everything")
        step = ks
    else:
        step = ks[cuts[-2]:cuts[-1]]
    total = sum(t for _, t in step)
    by = defaultdict(lambda: [0, 0.0])
    for n, t in step:
        by[short(n)][0] += 1
        by[short(n)][1] += t
    print(f"\none step: {len(step)} kernel launches, {total:.1f} ms of GPU time\n")
    print("| kernel | launches | ms | share |")
    print("|---|---|---|---|")
    for n, (c, t) in sorted(by.items(), key=lambda kv: -kv[1][1])[:40]:
        print(f"| `{n}` | {c} | {t:.2f} | {100 * t / total:.1f} % |")


if __name__ == "__main__":
    main(*sys.argv[1:])
