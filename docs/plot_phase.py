#!/usr/bin/python3
"""Exact-recovery rate against the number of samples n, one line per method, with Wilson 95% bands, from the CSV
that `toy_bilevel --study phase --csv FILE` writes (one row per method, n and seed).

    /usr/bin/python3 docs/plot_phase.py docs/results/phase_transition.csv -o docs/results/phase_transition.png

Needs Debian's python3-matplotlib.
"""
import argparse
import collections
import csv
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

LABELS = {
    "magnitude": "magnitude pruning of A⁺b",
    "iht": "IHT",
    "htp": "HTP",
    "omp": "OMP",
    "lasso": "Lasso (FISTA) + LS debias",
    "bip_paper": "BiP, paper (scores, first-order IG)",
    "bip_best": "BiP, best documented mode",
}


def wilson(s, t, z=1.959963984540054):
    if t == 0:
        return 0.0, 1.0
    p = s / t
    centre = (p + z * z / (2 * t)) / (1 + z * z / t)
    half = z * math.sqrt(p * (1 - p) / t + z * z / (4 * t * t)) / (1 + z * z / t)
    return max(0.0, centre - half), min(1.0, centre + half)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("csv")
    ap.add_argument("-o", "--output", default="phase_transition.png")
    args = ap.parse_args()

    counts = collections.defaultdict(lambda: [0, 0])  # (method, n) -> [exact, runs]
    order = []
    with open(args.csv, newline="") as f:
        for row in csv.DictReader(f):
            key = (row["method"], int(row["n"]))
            counts[key][0] += int(row["exact"])
            counts[key][1] += 1
            if row["method"] not in order:
                order.append(row["method"])

    fig, ax = plt.subplots(figsize=(8, 5))
    for method in order:
        ns = sorted(n for (m, n) in counts if m == method)
        rate = [counts[(method, n)][0] / counts[(method, n)][1] for n in ns]
        bands = [wilson(*counts[(method, n)]) for n in ns]
        style = "-" if method.startswith("bip") else "--"
        line, = ax.plot(ns, rate, style, marker="o", label=LABELS.get(method, method))
        ax.fill_between(ns, [b[0] for b in bands], [b[1] for b in bands], color=line.get_color(), alpha=0.12)
    ax.axvline(2 * 20 * math.log(1000 - 20), color="grey", lw=0.8, ls=":")
    ax.text(2 * 20 * math.log(1000 - 20) + 3, 0.45, "2k ln(d−k)", color="grey")
    ax.set_xlabel("number of samples n (d = 1000, k = 20, SNR 10)")
    ax.set_ylabel("exact support recovery (fraction of seeds)")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title("Planted sparse regression: recovery against n, Wilson 95% bands")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(args.output, dpi=120)


if __name__ == "__main__":
    main()
