#!/usr/bin/env bash
# Builds bipq's libFuzzer harnesses (tests/fuzz) with clang 14, AddressSanitizer and UndefinedBehaviorSanitizer,
# writes their seed corpora, and runs each for SECONDS (default 60). Fails on any crash, uncaught exception, leak,
# timeout (an input taking more than 10 s) or out-of-memory (more than 2048 MB); the failing input is kept as
# <build dir>/artifacts/<fuzzer>-crash-..., -leak-..., -timeout-... or -oom-....
# Usage: scripts/run_fuzzers.sh [SECONDS] [BUILD_DIR]        (BUILD_DIR defaults to build-fuzz)
# The corpus each run grows is kept in <build dir>/corpus/<fuzzer>/, so a later run starts from it. BIPQ_FUZZERS
# (e.g. "fuzz_npy fuzz_idx_gzip") runs only those. docs/fuzzing.md.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
build=${2:-build-fuzz}
scripts/install_deps.sh
cxx=${BIPQ_FUZZ_CXX:-clang++-14}
cmake -S . -B "$build" -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBIPQ_BUILD_FUZZERS=ON \
      -DBIPQ_BUILD_TESTS=OFF -DBIPQ_BUILD_EXAMPLES=OFF -DBIPQ_BUILD_BENCHMARKS=OFF -DBIPQ_WERROR=ON >/dev/null
cmake --build "$build" -j"$(nproc)"
fuzz_dir="$build/tests/fuzz"
rm -rf "$build/seeds"
"$fuzz_dir/make_fuzz_seeds" "$build/seeds" >/dev/null
mkdir -p "$build/artifacts" "$build/logs"

failures=0
summary=()
for fuzzer in "$fuzz_dir"/fuzz_*; do
  [ -x "$fuzzer" ] && [ -f "$fuzzer" ] || continue
  name=$(basename "$fuzzer")
  if [ -n "${BIPQ_FUZZERS:-}" ] && [[ " $BIPQ_FUZZERS " != *" $name "* ]]; then continue; fi
  mkdir -p "$build/corpus/$name"
  log="$build/logs/$name.log"
  status=0
  "$fuzzer" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=2048 -max_len=4096 \
            -print_final_stats=1 -artifact_prefix="$build/artifacts/$name-" \
            "$build/corpus/$name" "$build/seeds/$name" >"$log" 2>&1 || status=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  if [ "$status" -eq 0 ]; then
    result=ok
  else
    result="FAILED (exit $status): $(grep -m1 -E 'ERROR: |SUMMARY: |==[0-9]+==' "$log" || echo 'see log')"
    failures=$((failures + 1))
    tail -40 "$log" >&2
  fi
  summary+=("$(printf '%-16s %6ss %12s executions %8s exec/s  %s' "$name" "$seconds" "${runs:-?}" "${rate:-?}" "$result")")
done
printf '%s\n' "${summary[@]}"
[ ${#summary[@]} -gt 0 ] || { echo "run_fuzzers: no fuzzer was built" >&2; exit 1; }
[ "$failures" -eq 0 ] && echo "all fuzzers passed (logs in $build/logs)" || echo "$failures fuzzers failed (logs in $build/logs)"
exit $((failures > 0))
