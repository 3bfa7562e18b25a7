#!/usr/bin/env bash
# The main demo's command line: every bad flag or value is one line on stderr and exit status 2; a small real run
# prints the result table and writes the CSV. Usage: prune_fashion_mnist.sh <path to prune_fashion_mnist>
set -uo pipefail
demo=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0

expect_usage_error() {  # expect_usage_error <text the message must contain> <args...>
  local want=$1
  shift
  "$demo" "$@" >"$work/out" 2>"$work/err"
  local status=$?
  local lines
  lines=$(wc -l <"$work/err")
  if [ "$status" -ne 2 ] || [ "$lines" -ne 1 ] || ! grep -qF -- "$want" "$work/err"; then
    echo "FAIL: $* -> status $status, $lines stderr lines: $(cat "$work/err")"
    failures=$((failures + 1))
  else
    echo "ok: $* -> $(cat "$work/err")"
  fi
}

expect_usage_error "unknown flag --bogus" --bogus 1
expect_usage_error "missing value for --density" --density
expect_usage_error "invalid value 'foo' for --method" --method foo
expect_usage_error "--density must be in (0, 1]" --density 1.5
expect_usage_error "invalid value 'abc' for --density" --density abc
expect_usage_error "invalid value '-1' for --epochs" --epochs -1
expect_usage_error "--epochs must be >= 1" --epochs 0
expect_usage_error "invalid value '-2' for --threads" --threads -2
expect_usage_error "invalid value '3x' for --seed" --seed 3x
expect_usage_error "invalid value 'tensor' for --scope" --scope tensor
expect_usage_error "--scope neuron is available for --method sap only" --scope neuron --method omp
expect_usage_error "invalid value 'mlp2' for --model" --model mlp2
expect_usage_error "--resume needs --checkpoint DIR" --resume
expect_usage_error "--checkpoint is not available for --model cnn" --model cnn --checkpoint x

"$demo" --help >"$work/help" 2>&1
for flag in --method --model --density --epochs --scope --structure --seed --threads --csv --save-masks --data; do
  grep -qF -- "$flag" "$work/help" || { echo "FAIL: --help does not mention $flag"; failures=$((failures + 1)); }
done

# A small real run (1,000 training images, one epoch per training run): the table and the CSV.
if "$demo" --method omp,bip --train-size 1000 --epochs 1 --threads 1 --csv "$work/r.csv" \
     --save-masks "$work/masks" >"$work/out" 2>"$work/err"; then
  for want in "| method | density | test accuracy | PQ Index | wall time (s) | time / IMP |" "| omp | 0.0500 |" \
              "| bip | 0.0500 |"; do
    grep -qF -- "$want" "$work/out" || { echo "FAIL: the table lacks '$want'"; failures=$((failures + 1)); }
  done
  head -1 "$work/r.csv" | grep -q "^method,round,phase,density,pq_index" ||
    { echo "FAIL: CSV header"; failures=$((failures + 1)); }
  [ -f "$work/masks/bip/index.json" ] && [ -f "$work/masks/bip/conv1.weight.mask.npy" ] ||
    { echo "FAIL: masks not written"; failures=$((failures + 1)); }
  echo "ok: small run"
else
  echo "FAIL: small run exited with $?: $(cat "$work/err")"
  failures=$((failures + 1))
fi

[ "$failures" -eq 0 ] && echo "all command-line checks passed" || echo "$failures command-line checks failed"
exit $((failures > 0))
