#!/usr/bin/env bash
# Kill -9 and resume: the demo on a small slice (every method, one epoch per training run, one thread) is killed
# with SIGKILL at random moments, at least KILLS times, each time rerun with --resume, and finally run to its end.
# Its masks and weights (--save-masks), its CSV and its table must equal those of an uninterrupted run byte for byte,
# the wall-time columns and the table's passes column aside (they measure the process, not the result). Reports how many kills landed inside a
# checkpoint write (a temporary file left behind).
# Usage: kill_resume.sh <path to prune_fashion_mnist> [KILLS (default 20)] [SEED (default: random)]
set -uo pipefail
demo=$1
kills=${2:-20}
seed=${3:-$(date +%s)}
args=(--method all --train-size 2000 --epochs 1 --density 0.3 --threads 1)
work=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; rm -rf "$work"' EXIT
now() { date +%s.%N; }
fail() { echo "FAIL: $*"; exit 1; }

# The uninterrupted run, timed: the kills are spread over about as long.
start=$(now)
"$demo" "${args[@]}" --csv "$work/ref.csv" --save-masks "$work/ref" >"$work/ref.out" 2>"$work/ref.err" ||
  fail "the uninterrupted run exited with $?: $(tail -1 "$work/ref.err")"
reference_seconds=$(awk -v a="$start" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }')
echo "uninterrupted run: $reference_seconds s; seed $seed"

RANDOM=$((seed % 32768))
killed=0 in_write=0 chains=0 attempts=0
chain_start=$(now)
while :; do
  chains=$((chains + 1))
  rm -rf "$work/ck" "$work/run" "$work/run.csv"
  while :; do  # one chain: start, kill, resume ... until a run ends by itself
    attempts=$((attempts + 1))
    present=$(find "$work/ck" -name '*.ckpt' 2>/dev/null | wc -l)  # the methods this run must resume
    "$demo" "${args[@]}" --csv "$work/run.csv" --save-masks "$work/run" --checkpoint "$work/ck" --resume \
      >"$work/run.out" 2>"$work/run.err" &
    pid=$!
    if [ "$killed" -lt "$kills" ]; then
      # Uniform in (0, 2 T / KILLS): the kills of one chain cover about one run.
      delay=$(awk -v t="$reference_seconds" -v k="$kills" -v r="$RANDOM" 'BEGIN { printf "%.3f", 2 * t / k * r / 32768 }')
      sleep "$delay"
      kill -9 "$pid" 2>/dev/null
      wait "$pid" 2>/dev/null
      status=$?
      pid=
      if [ "$status" -eq 137 ]; then  # killed (128 + SIGKILL), not ended by itself
        killed=$((killed + 1))
        leftovers=$(find "$work/ck" -name '*.tmp-*' 2>/dev/null | wc -l)
        if [ "$leftovers" -gt 0 ]; then
          in_write=$((in_write + 1))
          find "$work/ck" -name '*.tmp-*' -delete
        fi
        continue
      fi
    else
      wait "$pid"
      status=$?
      pid=
    fi
    [ "$status" -eq 0 ] || fail "a resumed run exited with $status: $(tail -1 "$work/run.err")"
    resumed=$(grep -c ': resumed from ' "$work/run.err")
    [ "$resumed" -eq "$present" ] ||
      fail "the last run resumed $resumed methods, but $present had a checkpoint (chain $chains)"
    break
  done

  # The chain's result against the uninterrupted run's.
  cut -d, -f1-8,10- "$work/ref.csv" >"$work/ref.cut"
  cut -d, -f1-8,10- "$work/run.csv" >"$work/run.cut"
  cmp -s "$work/ref.cut" "$work/run.cut" || fail "the CSV differs (chain $chains): $(diff "$work/ref.cut" "$work/run.cut" | head -5)"
  [ "$(head -1 "$work/ref.csv" | cut -d, -f9)" = seconds ] || fail "the CSV's 9th column is not 'seconds'"
  # Every file of the exports but index.json, which records this process's run (a unique write id, wall times).
  diff -r -x index.json "$work/ref" "$work/run" >/dev/null ||
    fail "the masks or weights differ (chain $chains): $(diff -rq -x index.json "$work/ref" "$work/run" | head -3)"
  # The table but its last three columns: passes (a cost counter of the process), wall time, time / IMP; up to the
  # inference table, whose speeds are measured.
  table() { awk '/^inference, batch/ { exit } { print }' "$1" | grep -E '^\||PQ Index per round' |
              awk -F'|' '/^\|/ { print $2 "|" $3 "|" $4 "|" $5 "|" $6; next } { print }'; }
  [ "$(table "$work/ref.out")" = "$(table "$work/run.out")" ] || fail "the table differs (chain $chains)"
  [ "$killed" -ge "$kills" ] && break
done
chain_seconds=$(awk -v a="$chain_start" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }')
echo "ok: $killed kills with SIGKILL in $chains chain(s) of $attempts runs, $in_write inside a checkpoint write;" \
     "masks, weights, CSV and table equal the uninterrupted run's ($chain_seconds s for the kills and resumes)"
