#!/usr/bin/env python3
"""Print criterion's medians as a table with ratios against a peer measured in the same run.

Usage: python3 benches/report.py [CRITERION_DIR] (default target/criterion)
Each row: group, size, credvault's median, each peer's median and peer/credvault
(above 1 means credvault is faster).
"""
import json
import pathlib
import sys

root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "target/criterion")
rows = {}
for est in root.glob("*/*/*/new/estimates.json"):
    group, impl, size = est.parts[-5], est.parts[-4], est.parts[-3]
    median = json.loads(est.read_text())["median"]["point_estimate"]
    rows.setdefault((group, int(size)), {})[impl] = median


def fmt(ns):
    return f"{ns / 1000:.2f} µs" if ns >= 1000 else f"{ns:.0f} ns"


for (group, size), impls in sorted(rows.items()):
    ours = {k: v for k, v in impls.items() if k.startswith("credvault")}
    peers = {k: v for k, v in impls.items() if not k.startswith("credvault")}
    for name, t in sorted(ours.items()):
        cells = [f"{p} {fmt(v)} ({v / t:.2f}x)" for p, v in sorted(peers.items())]
        print(f"{group:16} {size:>6} {name:18} {fmt(t):>10}   " + "   ".join(cells))
