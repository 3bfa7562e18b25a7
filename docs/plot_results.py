#!/usr/bin/python3
"""Accuracy against density, one line per method, from the CSV files the demo writes.

    /usr/bin/python3 docs/plot_results.py docs/results/*.csv -o docs/results/accuracy_vs_density.png

Each CSV holds the per-round records of one run of examples/prune_fashion_mnist (--csv FILE). A method contributes
its final record from every file; SAP contributes every pruning round (its densities are its own choice).
Needs Debian's python3-matplotlib.
"""
import argparse
import csv
import collections

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("csv", nargs="+")
    ap.add_argument("-o", "--output", default="accuracy_vs_density.png")
    args = ap.parse_args()

    points = collections.defaultdict(set)  # method -> {(density, accuracy)}
    for path in args.csv:
        rows = collections.defaultdict(list)
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                rows[row["method"]].append(row)
        for method, records in rows.items():
            chosen = records[1:] if method == "sap" else records[-1:]
            for r in chosen:
                points[method].add((float(r["density"]), 100.0 * float(r["test_accuracy"])))
            points["dense"].add((1.0, 100.0 * float(records[0]["test_accuracy"]))) if method == "imp" else None

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for method in sorted(points):
        xs, ys = zip(*sorted(points[method]))
        ax.plot(xs, ys, marker="o", label=method.upper() if method != "dense" else "dense")
    ax.set_xscale("log")
    ax.set_xlabel("density (fraction of prunable weights kept, log scale)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("LeNet-5 on Fashion-MNIST")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.output, dpi=120)


if __name__ == "__main__":
    main()
