#!/usr/bin/env bash
# Runs the BiP study's jobs (jobs.txt: one "name|demo flags" per line) on WORKERS processes of one thread each, then
# collects every run's --summary row into runs.csv with the job's variant in front. A job whose CSV exists is not
# rerun, so an interrupted study continues where it stopped.
#   bash docs/results/study/run_study.sh <prune_fashion_mnist> <out dir> [jobs.txt] [WORKERS=2]
# Job names: bip-<variant>-<density>-s<seed> or imp-<density>-s<seed>. summarize.py makes the tables of results.md.
set -euo pipefail
demo=$1 out=$2
jobs=${3:-$(dirname "$0")/jobs.txt}
workers=${4:-2}
mkdir -p "$out/runs" "$out/logs" "$out/locks"
worker() {
  while IFS='|' read -r name flags; do
    [ -z "$name" ] || [ -s "$out/runs/$name.csv" ] && continue
    mkdir "$out/locks/$name" 2>/dev/null || continue
    # shellcheck disable=SC2086
    "$demo" --threads 1 --csv "" --summary "$out/runs/$name.csv" $flags >"$out/logs/$name.log" 2>&1 ||
      echo "$name failed (log: $out/logs/$name.log)" >&2
    rmdir "$out/locks/$name"
  done <"$jobs"
}
for _ in $(seq "$workers"); do worker & done
wait
echo "variant,seed,method,density,test_accuracy,validation_accuracy,passes,seconds" >"$out/runs.csv"
for f in "$out"/runs/*.csv; do
  b=$(basename "$f" .csv) v=${b%-*-s*}
  tail -n +2 "$f" | sed "s/^/${v#bip-},/" >>"$out/runs.csv"
done
