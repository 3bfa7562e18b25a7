#!/usr/bin/env bash
# PyTorch rebuilds bipq's exported models and gets bipq's results: same prediction on every test image, same
# accuracy, loss within float tolerance. LeNet-5 stored sparse (unstructured masks), the PQI CNN with batch norm
# stored dense. Exit 77 (reported by CTest as skipped) when python3 with torch, or Fashion-MNIST, is missing.
# Usage: parity.sh <bipq_torch_reference> <examples/torch_from_bipq.py>
set -uo pipefail
reference=$1
script=$2
python=""
for candidate in ${BIPQ_PYTHON:-} /usr/bin/python3 python3; do
  if "$candidate" -c 'import torch, numpy' >/dev/null 2>&1; then python=$candidate; break; fi
done
if [ -z "$python" ]; then echo "SKIPPED: no python3 with torch and numpy (Debian: python3-torch)"; exit 77; fi
data=${BIPQ_FASHION_MNIST:-/usr/share/datasets/fashion-mnist}
if [ ! -e "$data/t10k-images-idx3-ubyte.gz" ] && [ ! -e "$data/t10k-images-idx3-ubyte" ]; then
  echo "SKIPPED: Fashion-MNIST not found in $data"; exit 77
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0
for config in "lenet5 sparse 0.05 2000" "cnn dense 0.2 1000"; do
  set -- $config
  out="$work/$1-$2"
  if ! "$reference" "$out" "$1" "$2" "$3" "$4"; then echo "FAIL: bipq_torch_reference $config"; failures=$((failures + 1)); continue; fi
  "$python" "$script" "$out/model" --data "$data" --reference "$out/reference" || failures=$((failures + 1))
done
[ "$failures" -eq 0 ] && echo "PyTorch agrees with bipq on every model" || { echo "$failures PyTorch parity checks failed"; exit 1; }
