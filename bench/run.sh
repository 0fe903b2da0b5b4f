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

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 1 300); do redis-cli -p "$1" PING >/dev/null 2>&1 && return 0; sleep 0.1; done; echo "port $1 did not come up" >&2; exit 1; }

start_tickdb() {
  local port; port=$(free_port)
  RUST_LOG=warn "$BIN" --port "$port" --data-dir "$work/tickdb-$port" 2>"$work/tickdb-$port.log" &
  pids+=($!); wait_port "$port"; echo "$port"
}
start_redis() {
  local port; port=$(free_port); mkdir -p "$work/redis-$port"
  redis-server --port "$port" --bind 127.0.0.1 --dir "$work/redis-$port" --save '' \
    --appendonly yes --appendfsync "$1" --daemonize no --logfile "$work/redis-$port.log" &
  pids+=($!); wait_port "$port"; echo "$port"
}

# bench PORT P -> lines "test,rps"
bench() {
  redis-cli -p "$1" FLUSHALL >/dev/null
  redis-benchmark -p "$1" -t "$TESTS" -c "$CLIENTS" -n "$REQUESTS" -P "$2" -q --csv 2>/dev/null \
    | tail -n +2 | tr -d '"' | cut -d, -f1,2
}

tickdb=$(start_tickdb)
always=$(start_redis always)
everysec=$(start_redis everysec)

echo "| test | -P | tickdb req/s | redis always req/s | redis everysec req/s | tickdb / always | tickdb / everysec |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
for p in $PIPELINES; do
  bench "$tickdb" "$p" > "$work/t.csv"
  bench "$always" "$p" > "$work/a.csv"
  bench "$everysec" "$p" > "$work/e.csv"
  while IFS=, read -r test rps; do
    a=$(grep "^$test," "$work/a.csv" | cut -d, -f2)
    e=$(grep "^$test," "$work/e.csv" | cut -d, -f2)
    ra=$(python3 -c "print(f'{$rps/$a:.2f}')")
    re=$(python3 -c "print(f'{$rps/$e:.2f}')")
    echo "| $test | $p | $rps | $a | $e | $ra | $re |"
  done < "$work/t.csv"
done
echo
echo "redis-benchmark -c $CLIENTS -n $REQUESTS, $(nproc) cores, $(redis-server --version | cut -d' ' -f3), tickdb $("$BIN" --version | cut -d' ' -f2)"
