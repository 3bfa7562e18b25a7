#!/usr/bin/env bash
# The main demo's command line: every bad flag or value is one line on stderr and exit status 2; so is every output
# path that cannot be written, found before any data is loaded; a small real run prints the result table and writes
# the CSV. Usage: prune_fashion_mnist.sh <path to prune_fashion_mnist>
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
expect_usage_error "invalid range '4-1' for --seeds" --seeds 4-1
expect_usage_error "invalid value '0,' for --seeds" --seeds 0,
expect_usage_error "invalid value 'x' for --seeds" --seeds 0,x
expect_usage_error "invalid value 'fast' for --bip-ig" --bip-ig fast
expect_usage_error "invalid value 'mask' for --bip-param" --bip-param mask
expect_usage_error "invalid value 'paper' for --bip-preset" --bip-preset paper
expect_usage_error "--bip-upper-rate must be > 0" --bip-upper-rate 0
expect_usage_error "--sap-rounds must be >= 1" --sap-rounds 0
expect_usage_error "--validation 60000 leaves no training images" --validation 60000
expect_usage_error "--resume needs --checkpoint DIR" --resume
expect_usage_error "--checkpoint is not available for --model cnn" --model cnn --checkpoint x
expect_usage_error "invalid value '' for --method" --method ,omp
expect_usage_error "invalid value '' for --method" --method omp,
expect_usage_error "invalid value '' for --method" --method omp,,bip

# Output paths that cannot be written: refused before any work (nothing on stdout: the data is not even loaded).
expect_output_error() {  # expect_output_error <text the message must contain> <args...>
  expect_usage_error "$@"
  if [ -s "$work/out" ]; then
    echo "FAIL: ${*:2} printed before refusing its output path: $(head -1 "$work/out")"
    failures=$((failures + 1))
  fi
}
touch "$work/plain"
expect_output_error "cannot write --csv $work/missing/r.csv: directory $work/missing does not exist" \
  --csv "$work/missing/r.csv"
expect_output_error "cannot write --csv $work/plain/r.csv: $work/plain is not a directory" --csv "$work/plain/r.csv"
expect_output_error "cannot write --csv $work: it is a directory" --csv "$work"
expect_output_error "cannot write --summary $work/missing/s.csv: directory $work/missing does not exist" \
  --summary "$work/missing/s.csv"
expect_output_error "cannot write --save-masks $work/plain: not a directory" --save-masks "$work/plain"
expect_output_error "cannot write --save-masks $work/plain/masks/bip: $work/plain is not a directory" \
  --save-masks "$work/plain/masks/bip"
# A directory nobody can create files in, root included: /proc (procfs refuses new files whatever the caller).
if [ "$(stat -f -c %T /proc 2>/dev/null)" = "proc" ]; then
  expect_output_error "cannot write --csv /proc/r.csv: cannot create files in /proc" --csv /proc/r.csv
  expect_output_error "cannot write --save-masks /proc/masks: cannot create files in /proc" --save-masks /proc/masks
else
  echo "skip: /proc is not procfs here: the unwritable-directory case for every user is not tried"
fi
# A read-only directory: meaningful for a user other than root only (root writes through permission bits).
mkdir "$work/ro" && chmod 555 "$work/ro"
if [ "$(id -u)" -ne 0 ]; then
  expect_output_error "cannot write --csv $work/ro/r.csv: cannot create files in $work/ro" --csv "$work/ro/r.csv"
  expect_output_error "cannot write --save-masks $work/ro/masks: cannot create files in $work/ro" \
    --save-masks "$work/ro/masks"
else
  echo "skip: read-only directory (mode 555) not tried: running as root, whom permission bits do not stop"
fi
chmod 755 "$work/ro"

"$demo" --help >"$work/help" 2>&1
for flag in --method --model --density --epochs --scope --structure --seed --seeds --validation --threads --csv \
            --save-masks --export --data --sap-rounds --bip-preset --bip-ig --bip-param --bip-schedules --bip-upper-rate \
            --bip-epochs --bip-finetune --summary --checkpoint --resume; do
  grep -qF -- "$flag" "$work/help" || { echo "FAIL: --help does not mention $flag"; failures=$((failures + 1)); }
done

# A small real run (1,000 training images, one epoch per training run): the table and the CSV.
if "$demo" --method omp,bip --train-size 1000 --epochs 1 --threads 1 --csv "$work/r.csv" \
     --save-masks "$work/masks" --export "$work/export" >"$work/out" 2>"$work/err"; then
  for want in "| method | density | test accuracy | validation accuracy | PQ Index | passes (epochs) | wall time (s) | time / IMP |" \
              "| omp | 0.0500 |" "1000 training, 5000 validation and 10000 test images" \
              "| bip | 0.0500 |" "| dense | dense | 61706 |" "| omp | sparse |" "| bip | sparse |"; do
    grep -qF -- "$want" "$work/out" || { echo "FAIL: the table lacks '$want'"; failures=$((failures + 1)); }
  done
  head -1 "$work/r.csv" | grep -q "^method,round,phase,density,pq_index" ||
    { echo "FAIL: CSV header"; failures=$((failures + 1)); }
  [ -f "$work/masks/bip/index.json" ] && [ -f "$work/masks/bip/conv1.weight.mask.npy" ] ||
    { echo "FAIL: masks not written"; failures=$((failures + 1)); }
  [ -f "$work/export/bip/model.json" ] && [ -f "$work/export/bip/fc1.weight.indices.npy" ] &&
    [ -f "$work/masks/omp/model.json" ] && [ -f "$work/masks/omp/fc3.bias.npy" ] ||
    { echo "FAIL: models not exported"; failures=$((failures + 1)); }
  echo "ok: small run"
else
  echo "FAIL: small run exited with $?: $(cat "$work/err")"
  failures=$((failures + 1))
fi

# Two seeds: each seed's table, then the summary over seeds and the paired comparison with IMP; OMP costs one dense
# and one sparse epoch of passes, IMP one per round (density 0.5: four rounds, each evaluated on the test set).
if "$demo" --method imp,omp --seeds 0-1 --density 0.5 --train-size 300 --validation 500 --epochs 1 --threads 1 \
     --csv "$work/s.csv" --summary "$work/summary.csv" >"$work/out" 2>"$work/err"; then
  for want in "| method | seeds | density | test accuracy (mean ± sd) |" "| method − imp | paired seeds |" \
              "| omp | 2 | 0.5000 |" "300 training, 500 validation and 10000 test images" "seed 0,1"; do
    grep -qF -- "$want" "$work/out" || { echo "FAIL: the two-seed run lacks '$want'"; failures=$((failures + 1)); }
  done
  [ "$(grep -c '^| omp | 0.5000 | .* | 2.0 | ' "$work/out")" -eq 2 ] ||
    { echo "FAIL: OMP's cost is not 2.0 passes on each seed"; failures=$((failures + 1)); }
  [ "$(tail -n +2 "$work/summary.csv" | wc -l)" -eq 4 ] && head -1 "$work/s.csv" | grep -q ",seed$" &&
    [ "$(grep -c ',1$' "$work/s.csv")" -gt 0 ] ||
    { echo "FAIL: the two-seed CSVs"; failures=$((failures + 1)); }
  echo "ok: two seeds"
else
  echo "FAIL: two-seed run exited with $?: $(cat "$work/err")"
  failures=$((failures + 1))
fi

[ "$failures" -eq 0 ] && echo "all command-line checks passed" || echo "$failures command-line checks failed"
exit $((failures > 0))
