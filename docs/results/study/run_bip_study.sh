#!/usr/bin/env bash
# BiP's variants against IMP on the validation split (the last 5,000 training images): seeds 0-2, densities 5% and
# 1%, 3 epochs per training run, one thread per run. Writes one summary CSV per variant and density into $out.
#   bash docs/results/study/run_bip_study.sh <prune_fashion_mnist> <out dir> <variant>...
# A variant is a name and the BiP flags, e.g. "released:--bip-preset released".
set -euo pipefail
demo=$1 out=$2
shift 2
mkdir -p "$out"
for spec in "$@"; do
  name=${spec%%:*} flags=${spec#*:}
  for density in 0.05 0.01; do
    f="$out/$name-$density.csv"
    [ -s "$f" ] && continue
    # shellcheck disable=SC2086
    "$demo" --method bip --seeds 0-2 --density "$density" --threads 1 --csv "" --summary "$f" $flags >/dev/null 2>&1
  done
done
