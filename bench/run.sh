#!/usr/bin/env bash
# redis-benchmark against tickdb and against redis-server, started side by side in the same run,
# on loopback. Redis runs with appendonly yes + appendfsync always (durable like tickdb) and
# with appendfsync everysec. Prints a Markdown table with requests/s and tickdb's ratio.
#
#   bash bench/run.sh                  # defaults below
#   REQUESTS=50000 CLIENTS=50 TESTS=ping,set,get bash bench/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
REQUESTS=${REQUESTS:-200000}
CLIENTS=${CLIENTS:-50}
TESTS=${TESTS:-ping,set,get,incr,mset}
PIPELINES=${PIPELINES:-"1 16"}
TARGET=${CARGO_TARGET_DIR:-$HOME/.cache/tickdb-target}
BIN=${TICKDB_BIN:-$TARGET/release/tickdb}
[ -x "$BIN" ] || { echo "build first: cargo build --release -p tickdb-server" >&2; exit 1; }
command -v redis-server >/dev/null || { echo "needs redis-server (make deps)" >&2; exit 1; }

. bench/lib.sh

# Each starter sets $port (no command substitution: its subshell would run the EXIT trap).
start_tickdb() {
  port=$(free_port)
  RUST_LOG=warn "$BIN" --port "$port" --zmq-port 0 --data-dir "$work/tickdb-$port" 2>"$work/tickdb-$port.log" &
  pids+=($!); wait_port "$port"
}
start_redis() {
  port=$(free_port); mkdir -p "$work/redis-$port"
  redis-server --port "$port" --bind 127.0.0.1 --dir "$work/redis-$port" --save '' \
    --appendonly yes --appendfsync "$1" --daemonize no --logfile "$work/redis-$port.log" &
  pids+=($!); wait_port "$port"
}

start_tickdb; tickdb=$port
start_redis always; always=$port
start_redis everysec; everysec=$port

compare "tickdb,redis always,redis everysec" "$tickdb" "$always" "$everysec"
echo "redis-benchmark -c $CLIENTS -n $REQUESTS, $(nproc) cores, $(redis-server --version | cut -d' ' -f3), tickdb $("$BIN" --version | cut -d' ' -f2)"
