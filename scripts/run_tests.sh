#!/usr/bin/env bash
# Configures, builds and runs bipq's unit tests and the examples' command-line test (Release build in build/, or the
# directory given as $1).
# Extra CMake arguments may follow the build directory, e.g. scripts/run_tests.sh build-asan -DBIPQ_SANITIZE=ON
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_deps.sh
build=${1:-build}
shift || true
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DBIPQ_BUILD_TESTS=ON -DBIPQ_BUILD_EXAMPLES=ON \
      -DBIPQ_BUILD_BENCHMARKS=OFF -DBIPQ_WERROR=ON "$@" >/dev/null
cmake --build "$build" -j"$(nproc)"
cd "$build"
ctest --output-on-failure -j"$(nproc)"
