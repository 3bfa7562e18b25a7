#!/usr/bin/env bash
# Installs the Debian 12 packages bipq builds, tests and runs with, when some are missing (needs root to install).
set -euo pipefail
packages=(g++ cmake make libeigen3-dev xtensor-dev xtl-dev libxsimd-dev doctest-dev libbenchmark-dev zlib1g-dev
          dataset-fashion-mnist python3-numpy)
# MPI: bipq::mpi (include/bipq/distributed/), its 2-rank tests and the demo's data-parallel mode.
packages+=(libopenmpi-dev openmpi-bin)
# LibTorch: the adapter bipq::torch and its round trip into PyTorch.
packages+=(libtorch-dev python3-torch)
# scripts/run_fuzzers.sh: clang 14 and its libFuzzer and sanitizer runtimes.
packages+=(clang-14 libclang-rt-14-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "bipq: missing Debian packages: ${missing[*]} (run as root, or: sudo apt-get install -y ${missing[*]})" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${missing[@]}" >/dev/null
