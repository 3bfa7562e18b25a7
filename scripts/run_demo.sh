#!/usr/bin/env bash
# Builds the examples and runs the main demo; arguments are passed to the demo (see --help).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DBIPQ_BUILD_EXAMPLES=ON >/dev/null
cmake --build build -j"$(nproc)" --target prune_fashion_mnist
exec build/examples/prune_fashion_mnist "$@"
