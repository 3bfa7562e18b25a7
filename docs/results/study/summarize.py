#!/usr/bin/env python3
"""Summarises the BiP study: per variant and density, the mean over seeds of validation and test accuracy, the
passes, and the paired difference to IMP (same seeds) with a 95% Student t interval; wall-time ratios are of
runs on a shared machine (two at a time), so the passes are the cost to compare.

    python3 docs/results/study/summarize.py docs/results/study/runs.csv [--metric validation|test] [--seeds 0-2]

runs.csv: one row per run with the columns variant, seed, method, density, test_accuracy, validation_accuracy,
passes, seconds (the demo's --summary rows with the variant's name in front; IMP's rows have variant "imp").
"""
import argparse
import csv
import math
import statistics
import sys

# Two-sided 95% quantiles of Student's t, by degrees of freedom.
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228}


def seed_set(text):
    if "-" in text:
        a, b = text.split("-")
        return set(range(int(a), int(b) + 1))
    return {int(s) for s in text.split(",")}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("runs")
    ap.add_argument("--metric", choices=["validation", "test"], default="validation")
    ap.add_argument("--seeds", default="0-2")
    args = ap.parse_args()
    seeds = seed_set(args.seeds)
    key = args.metric + "_accuracy"
    rows = {}
    with open(args.runs) as f:
        for r in csv.DictReader(f):
            s = int(r["seed"])
            if s not in seeds:
                continue
            d = round(float(r["density"]), 2)
            rows.setdefault((r["variant"], d), {})[s] = r
    print(f"| density | variant | seeds | {args.metric} accuracy (mean ± sd) | − IMP (paired, 95% CI) | passes | passes / IMP | time / IMP |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    for (variant, d) in sorted(rows, key=lambda k: (-k[1], k[0] != "imp", k[0])):
        runs = rows[(variant, d)]
        imp = rows.get(("imp", d), {})
        common = sorted(set(runs) & set(imp))
        acc = [100 * float(runs[s][key]) for s in sorted(runs)]
        passes = statistics.mean(float(runs[s]["passes"]) for s in runs)
        sd = statistics.stdev(acc) if len(acc) > 1 else float("nan")
        cell = "—"
        ratio = "—"
        time_ratio = "—"
        if variant != "imp" and common:
            diff = [100 * (float(runs[s][key]) - float(imp[s][key])) for s in common]
            m = statistics.mean(diff)
            if len(diff) > 1:
                h = T95[len(diff) - 1] * statistics.stdev(diff) / math.sqrt(len(diff))
                cell = f"{m:+.2f} [{m - h:+.2f}, {m + h:+.2f}]"
            else:
                cell = f"{m:+.2f}"
            ratio = f"{passes / statistics.mean(float(imp[s]['passes']) for s in common):.2f}"
            seconds = statistics.mean(float(runs[s]["seconds"]) for s in common)
            time_ratio = f"{seconds / statistics.mean(float(imp[s]['seconds']) for s in common):.2f}"
        print(f"| {d:.0%} | {variant} | {len(acc)} | {statistics.mean(acc):.2f}% ± {sd:.2f} | {cell} | {passes:.1f} | {ratio} | {time_ratio} |")


if __name__ == "__main__":
    sys.exit(main())
