#!/usr/bin/env bash
# The table of issue 10 (ingest and latest-N reads), measured side by side in one run:
#   - TS.MADD, 100 samples per command, 4 connections, 8 in flight, 1,000 series
#   - TS.ADD across 1,000 series, 50 connections, -P 16 and -P 1
#   - TS.REVRANGE key - + COUNT 1000, TS.GET and TS.RANGE avg 1-min on a 1,000,000-sample series
#   - the data directory after loading that series, and after a clean stop
#   - SET / INCR / GET -P 16 beside redis-server `appendfsync always` and `everysec`
#     (per-request overhead)
# Every ingest workload runs on redis-benchmark (a C client), so the client is not the limit.
#
# Peers: Debian's redis-server always (plain commands only: it has no TS.* commands). When
# RTS_MODULE names a RedisTimeSeries (or valkey-timeseries) module file, redis-server with it
# loaded (in memory) gets a column for the TS rows too. Nothing here builds a peer.
#
#   bash bench/ingest.sh                 # TICKDB_BIN or $CARGO_TARGET_DIR/release/tickdb
#   RTS_MODULE=/usr/lib/redis/modules/redistimeseries.so bash bench/ingest.sh
set -euo pipefail
cd "$(dirname "$0")/.."
REQUESTS=${REQUESTS:-200000}
CLIENTS=${CLIENTS:-50}
TESTS=set,incr,get
PIPELINES=16
TARGET=${CARGO_TARGET_DIR:-$HOME/.cache/tickdb-target}
BIN=${TICKDB_BIN:-$TARGET/release/tickdb}
[ -x "$BIN" ] || { echo "build first: cargo build --release -p tickdb-server" >&2; exit 1; }
command -v redis-server >/dev/null || { echo "needs redis-server (make deps)" >&2; exit 1; }
MADD_REQUESTS=${MADD_REQUESTS:-20000}
SERIES_SAMPLES=${SERIES_SAMPLES:-1000000}

. bench/lib.sh

start_tickdb() {
  port=$(free_port)
  RUST_LOG=warn "$BIN" --port "$port" --zmq-port 0 --data-dir "$work/tickdb-$port" 2>"$work/tickdb-$port.log" &
  pids+=($!); tickdb_pid=$!; wait_port "$port"
}
start_redis() { # start_redis NAME ARGS...
  port=$(free_port); mkdir -p "$work/redis-$port"
  redis-server --port "$port" --bind 127.0.0.1 --dir "$work/redis-$port" --save '' \
    --daemonize no --logfile "$work/redis-$port.log" "${@:2}" &
  pids+=($!); wait_port "$port"
}

rps() { grep -o '[0-9.]* requests per second' | awk '{print $1}' | tail -1; }
ratio() { python3 -c "a,b='$1','$2'; print(f'{float(a)/float(b):.2f}' if a and b else '')"; }

# One series per key, DUPLICATE_POLICY LAST, as `*` timestamps of one command can collide.
make_series() {
  python3 - "$1" <<'EOF'
import sys, redis
r = redis.Redis(port=int(sys.argv[1]))
p = r.pipeline(transaction=False)
for i in range(1000):
    p.execute_command("TS.CREATE", f"ts:{i:012d}", "DUPLICATE_POLICY", "LAST")
p.execute()
EOF
}

# madd PORT -> samples/s
madd() {
  local args=()
  for _ in $(seq 1 100); do args+=("ts:__rand_int__" "*" "__rand_int__"); done
  local r
  r=$(redis-benchmark -p "$1" -n "$MADD_REQUESTS" -c 4 -P 8 -r 1000 -q TS.MADD "${args[@]}" | rps)
  python3 -c "print(f'{float($r) * 100:.0f}')"
}
# tsadd PORT P -> samples/s
tsadd() {
  redis-benchmark -p "$1" -n "$REQUESTS" -c "$CLIENTS" -P "$2" -r 1000 -q \
    TS.ADD "ts:__rand_int__" "*" "__rand_int__" ON_DUPLICATE LAST | rps
}
# latency_ms PORT N ARGS... -> mean latency of one client, ms
latency_ms() {
  local r
  r=$(redis-benchmark -p "$1" -n "$2" -c 1 -q "${@:3}" | rps)
  python3 -c "print(f'{1000 / float($r):.2f}')"
}
# load_series PORT KEY N: N tick samples (random walk on a 0.01 tick, ms gaps) with BATCH_SET.
load_series() {
  python3 - "$1" "$2" "$3" <<'EOF'
import random, sys, redis
r = redis.Redis(port=int(sys.argv[1]))
key, n = sys.argv[2], int(sys.argv[3])
random.seed(7)
ts, px = 1_700_000_000_000, 100.0
p = r.pipeline(transaction=False)
for i in range(1, n + 1):
    ts += random.choice([1, 1, 2, 3, 5, 8, 13, 40, 250])
    px = round(px + random.choice([-0.02, -0.01, 0, 0, 0.01, 0.02]), 2)
    p.execute_command("BATCH_SET", key, px, ts)
    if i % 10_000 == 0 or i == n:
        p.execute_command("BATCH_FLUSH")
        p.execute()
EOF
}

start_tickdb; tickdb=$port
start_redis always --appendonly yes --appendfsync always; always=$port
start_redis everysec --appendonly yes --appendfsync everysec; everysec=$port
rts=
if [ -n "${RTS_MODULE:-}" ]; then start_redis rts --loadmodule "$RTS_MODULE"; rts=$port; fi

declare -A T R
make_series "$tickdb"; [ -n "$rts" ] && make_series "$rts"
T[madd]=$(madd "$tickdb"); [ -n "$rts" ] && R[madd]=$(madd "$rts")
for p in 16 1; do
  T[add$p]=$(tsadd "$tickdb" "$p"); [ -n "$rts" ] && R[add$p]=$(tsadd "$rts" "$p")
done

# A fresh tickdb for the 1M-sample series, so its data directory holds nothing else.
start_tickdb; big=$port; big_pid=$tickdb_pid
load_series "$big" big "$SERIES_SAMPLES"; [ -n "$rts" ] && load_series "$rts" big "$SERIES_SAMPLES"
T[rev]=$(latency_ms "$big" 200 TS.REVRANGE big - + COUNT 1000)
T[get]=$(latency_ms "$big" 2000 TS.GET big)
T[agg]=$(latency_ms "$big" 20 TS.RANGE big - + AGGREGATION avg 60000)
if [ -n "$rts" ]; then
  R[rev]=$(latency_ms "$rts" 200 TS.REVRANGE big - + COUNT 1000)
  R[get]=$(latency_ms "$rts" 2000 TS.GET big)
  R[agg]=$(latency_ms "$rts" 20 TS.RANGE big - + AGGREGATION avg 60000)
fi
dir_live=$(du -sb "$work/tickdb-$big" | cut -f1)
kill "$big_pid"; wait "$big_pid" 2>/dev/null || true
dir_stopped=$(du -sb "$work/tickdb-$big" | cut -f1)

echo "| workload | tickdb | RTS in memory | tickdb / RTS |"
echo "| --- | --- | --- | --- |"
row() { echo "| $1 | $2 | ${3:-—} | $(ratio "$2" "${3:-}") |"; }
row "TS.MADD 100 samples per command, 4 connections, 8 in flight, 1,000 series (samples/s)" "${T[madd]}" "${R[madd]:-}"
row "TS.ADD across 1,000 series, -c $CLIENTS -P 16 (samples/s)" "${T[add16]}" "${R[add16]:-}"
row "TS.ADD across 1,000 series, -c $CLIENTS -P 1 (samples/s)" "${T[add1]}" "${R[add1]:-}"
row "TS.REVRANGE key - + COUNT 1000 on a $SERIES_SAMPLES-sample series (ms)" "${T[rev]}" "${R[rev]:-}"
row "TS.GET on that series (ms)" "${T[get]}" "${R[get]:-}"
row "TS.RANGE avg over $SERIES_SAMPLES samples, 1-min buckets (ms)" "${T[agg]}" "${R[agg]:-}"
echo "| data directory after $SERIES_SAMPLES samples, then after a clean stop (bytes/sample) | $(python3 -c "print(f'{$dir_live/$SERIES_SAMPLES:.1f} ({$dir_stopped/$SERIES_SAMPLES:.1f})')") | — | |"
echo
echo "(latencies: mean of one redis-benchmark client; ratios for latencies are tickdb's time over the peer's)"
echo
compare "tickdb,redis always,redis everysec" "$tickdb" "$always" "$everysec"
echo "$(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $(redis-server --version | cut -d' ' -f3), tickdb $("$BIN" --version | cut -d' ' -f2) $(git rev-parse --short HEAD)"
