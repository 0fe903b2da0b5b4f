#!/usr/bin/env bash
# Time-series benchmarks against a fresh tickdb on loopback:
#   - TS.ADD ingest with redis-benchmark (1,000 series, `*` timestamps), pipeline 1 and 16
#   - TS.RANGE over a 1,000,000-sample series, raw and with 1-minute aggregation
#   - bytes per sample (TS.INFO memoryUsage / totalSamples) for a random-walk tick feed on a
#     0.01 tick with irregular millisecond gaps, and for a regular 1-second series
#
#   bash bench/ts.sh            # TICKDB_BIN or $CARGO_TARGET_DIR/release/tickdb
set -euo pipefail
cd "$(dirname "$0")/.."
REQUESTS=${REQUESTS:-200000}
CLIENTS=${CLIENTS:-50}
TARGET=${CARGO_TARGET_DIR:-$HOME/.cache/tickdb-target}
BIN=${TICKDB_BIN:-$TARGET/release/tickdb}
[ -x "$BIN" ] || { echo "build first: cargo build --release -p tickdb-server" >&2; exit 1; }

work=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
RUST_LOG=warn "$BIN" --port "$port" --zmq-port 0 --data-dir "$work/data" 2>"$work/tickdb.log" &
pid=$!
for _ in $(seq 1 300); do redis-cli -p "$port" PING >/dev/null 2>&1 && break; sleep 0.1; done

echo "| test | pipeline | samples/s |"
echo "| --- | --- | --- |"
for p in 1 16; do
  rps=$(redis-benchmark -p "$port" -n "$REQUESTS" -c "$CLIENTS" -P "$p" -r 1000 -q \
    TS.ADD "ts:__rand_int__" "*" "__rand_int__" ON_DUPLICATE LAST \
    | grep -o '[0-9.]* requests per second' | awk '{print $1}' | tail -1)
  echo "| TS.ADD, 1,000 series | $p | $rps |"
done
python3 bench/ts_range.py "$port"
