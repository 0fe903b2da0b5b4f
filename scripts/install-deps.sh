#!/usr/bin/env bash
# Installs what building and testing tickdb needs on a fresh Debian machine, and nothing that
# is already there (safe to run twice). Needs root for apt-get, or sudo.
set -euo pipefail

apt_packages=(
  libclang-dev clang    # bindgen for RocksDB's bundled C++ build
  redis-tools           # redis-cli, redis-benchmark: client tests and benchmarks
  tmux                  # a terminal for the interactive redis-cli tests
  redis-server          # the peer in benchmarks
  libzmq3-dev           # libzmq: the reference ZeroMQ peer in interoperability tests
  iproute2 nftables     # the fault suite: network namespaces, veths, a bridge, packet filters
  python3-venv          # the redis-py suite's virtualenv (tests/redis_py_suite.sh)
)
python_packages=(redis pyzmq)

missing=()
for p in "${apt_packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

py_missing=()
for p in "${python_packages[@]}"; do
  module=$p
  [ "$p" = pyzmq ] && module=zmq
  python3 -c "import $module" >/dev/null 2>&1 || py_missing+=("$p")
done
if [ ${#py_missing[@]} -gt 0 ]; then
  echo "installing Python packages: ${py_missing[*]}"
  python3 -m pip install -q "${py_missing[@]}"
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo is missing: install Rust (https://rustup.rs) first" >&2
  exit 1
fi
