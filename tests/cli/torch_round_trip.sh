#!/usr/bin/env bash
# bipq → PyTorch: prune_torch_module prunes a small run with BiP and IMP and saves parameters and masks; for each
# method, examples/load_torch_masks.py loads them into the same module in PyTorch with custom_from_mask and must get
# the test accuracy bipq reported, image for image, on a model that learned something (test accuracy ≥ 25%; chance
# is 10%).
# Usage: torch_round_trip.sh <prune_torch_module> <python3 with torch> <examples directory>
set -euo pipefail
demo=$1
python=$2
examples=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$demo" --method bip,imp --density 0.64 --epochs 1 --bilevel-epochs 1 --finetune-epochs 1 \
        --validation 1000 --train-size 5000 --test-size 1000 --threads 1 \
        --save "$work" >"$work/table" 2>/dev/null
cat "$work/table"
for method in bip imp; do
  "$python" "$examples/load_torch_masks.py" "$work/$method" --min-accuracy 0.25
done
