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
# Peers: Debian's redis-server `always` and `everysec` (plain commands only: it has no TS.*
# commands). When RTS_MODULE names a RedisTimeSeries module file, redis-server with it loaded
# (in memory) gets a column for the TS rows; BASE_BIN adds an earlier tickdb build. Every peer
# runs in this same run, taking turns workload by workload (REPEAT rounds, best result kept).
# Nothing here builds a peer.
#
#   bash bench/ingest.sh                 # TICKDB_BIN or $CARGO_TARGET_DIR/release/tickdb
#   BASE_BIN=/path/to/older/tickdb bash bench/ingest.sh      # adds a before/after column
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
REPEAT=${REPEAT:-2}

. bench/lib.sh

start_tickdb() { # start_tickdb BIN
  port=$(free_port)
  RUST_LOG=warn "$1" --port "$port" --zmq-port 0 --data-dir "$work/tickdb-$port" 2>"$work/tickdb-$port.log" &
  pids+=($!); tickdb_pid=$!; wait_port "$port"
}
start_redis() { # start_redis NAME ARGS...
  port=$(free_port); mkdir -p "$work/redis-$port"
  redis-server --port "$port" --bind 127.0.0.1 --dir "$work/redis-$port" --save '' \
    --daemonize no --logfile "$work/redis-$port.log" "${@:2}" &
  pids+=($!); wait_port "$port"
}

rps() { grep -o '[0-9.]* requests per second' | awk '{print $1}' | tail -1; }
# ratio A B -> A / B, from the leading number of each ("134.6 (130.2)" counts as 134.6)
ratio() { python3 -c "a,b='$1'.split(' ')[0],'$2'.split(' ')[0]; print(f'{float(a)/float(b):.2f}' if a and b else '')"; }

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
# load_series PORT KEY N: N tick samples (random walk on a 0.01 tick, ms gaps), TS.MADD of
# 10,000 samples per command (one log entry each in tickdb).
load_series() {
  python3 - "$1" "$2" "$3" <<'EOF'
import random, sys, redis
r = redis.Redis(port=int(sys.argv[1]))
key, n = sys.argv[2], int(sys.argv[3])
r.execute_command("TS.CREATE", key)
random.seed(7)
ts, px, args = 1_700_000_000_000, 100.0, []
for i in range(1, n + 1):
    ts += random.choice([1, 1, 2, 3, 5, 8, 13, 40, 250])
    px = round(px + random.choice([-0.02, -0.01, 0, 0, 0.01, 0.02]), 2)
    args += [key, ts, px]
    if i % 10_000 == 0 or i == n:
        r.execute_command("TS.MADD", *args)
        args = []
EOF
}

# The TS peers, in column order: tickdb, then (when given) an earlier tickdb build and
# RedisTimeSeries. Every one runs each workload in this same run.
names=(tickdb); bins=("$BIN")
[ -n "${BASE_BIN:-}" ] && { names+=("tickdb before"); bins+=("$BASE_BIN"); }
[ -n "${RTS_MODULE:-}" ] && { names+=("RTS in memory"); bins+=(rts); }
start_peer() { # start_peer INDEX -> $port, $peer_pid (tickdb only)
  if [ "${bins[$1]}" = rts ]; then start_redis rts --loadmodule "$RTS_MODULE"; peer_pid=
  else start_tickdb "${bins[$1]}"; peer_pid=$tickdb_pid; fi
}

# Each workload runs REPEAT times on every peer, the peers taking turns, and the best result
# counts (highest rate, lowest latency): on a shared, noisy machine that compares the peers
# under the same conditions better than one run each.
declare -A V
best() { # best KEY higher|lower VALUE: keeps the better of V[KEY] and VALUE
  local cur=${V[$1]:-}
  if [ -z "$cur" ] || python3 -c "import sys; a,b=float('$3'),float('$cur'); sys.exit(0 if (a>b if '$2'=='higher' else a<b) else 1)"; then
    V[$1]=$3
  fi
}
ports=(); ppids=()
for i in "${!names[@]}"; do start_peer "$i"; ports+=("$port"); ppids+=("${peer_pid:-}"); make_series "$port"; done
for _ in $(seq 1 "$REPEAT"); do
  for i in "${!names[@]}"; do best "$i,madd" higher "$(madd "${ports[$i]}")"; done
  for i in "${!names[@]}"; do best "$i,add16" higher "$(tsadd "${ports[$i]}" 16)"; done
  for i in "${!names[@]}"; do best "$i,add1" higher "$(tsadd "${ports[$i]}" 1)"; done
done
stop_peers() {
  for i in "${!names[@]}"; do
    if [ -n "${ppids[$i]}" ]; then kill "${ppids[$i]}"; wait "${ppids[$i]}" 2>/dev/null || true
    else redis-cli -p "${ports[$i]}" SHUTDOWN NOSAVE >/dev/null 2>&1 || true; fi
  done
}
stop_peers
# Fresh servers for the 1M-sample series, so a data directory holds nothing else.
ports=(); ppids=()
for i in "${!names[@]}"; do
  start_peer "$i"; ports+=("$port"); ppids+=("${peer_pid:-}")
  load_series "$port" big "$SERIES_SAMPLES"
done
for _ in $(seq 1 "$REPEAT"); do
  for i in "${!names[@]}"; do
    p=${ports[$i]}
    best "$i,rev" lower "$(latency_ms "$p" 100 TS.REVRANGE big - + COUNT 1000)"
    best "$i,get" lower "$(latency_ms "$p" 2000 TS.GET big)"
    best "$i,agg" lower "$(latency_ms "$p" 20 TS.RANGE big - + AGGREGATION avg 60000)"
  done
done
for i in "${!names[@]}"; do
  [ -n "${ppids[$i]}" ] || continue
  dir="$work/tickdb-${ports[$i]}"
  live=$(du -sb "$dir" | cut -f1)
  kill "${ppids[$i]}"; wait "${ppids[$i]}" 2>/dev/null || true
  stopped=$(du -sb "$dir" | cut -f1)
  V[$i,dir]=$(python3 -c "print(f'{$live/$SERIES_SAMPLES:.1f} ({$stopped/$SERIES_SAMPLES:.1f})')")
done
for i in "${!names[@]}"; do
  [ -n "${ppids[$i]}" ] || redis-cli -p "${ports[$i]}" SHUTDOWN NOSAVE >/dev/null 2>&1 || true
done

header="| workload |"; rule="| --- |"
for n in "${names[@]}"; do header+=" $n |"; rule+=" --- |"; done
for n in "${names[@]:1}"; do header+=" tickdb / $n |"; rule+=" --- |"; done
echo "$header"; echo "$rule"
row() { # row LABEL KEY higher|lower
  local line="| $1 |"
  for i in "${!names[@]}"; do line+=" ${V[$i,$2]:-} |"; done
  for i in "${!names[@]}"; do
    [ "$i" = 0 ] && continue
    if [ "$3" = higher ]; then line+=" $(ratio "${V[0,$2]:-}" "${V[$i,$2]:-}") |"
    else line+=" $(ratio "${V[$i,$2]:-}" "${V[0,$2]:-}") |"; fi
  done
  echo "$line"
}
row "TS.MADD 100 samples per command, 4 connections, 8 in flight, 1,000 series (samples/s)" madd higher
row "TS.ADD across 1,000 series, -c $CLIENTS -P 16 (samples/s)" add16 higher
row "TS.ADD across 1,000 series, -c $CLIENTS -P 1 (samples/s)" add1 higher
row "TS.REVRANGE key - + COUNT 1000 on a $SERIES_SAMPLES-sample series (ms)" rev lower
row "TS.GET on that series (ms)" get lower
row "TS.RANGE avg over $SERIES_SAMPLES samples, 1-min buckets (ms)" agg lower
row "data directory after $SERIES_SAMPLES samples, then after a clean stop (bytes/sample)" dir lower
echo
echo "(best of $REPEAT turns per peer; ratios: how many times better tickdb is, for latencies the peer's time over tickdb's; latencies are the mean of one redis-benchmark client)"
echo
start_tickdb "$BIN"; tickdb=$port
start_redis always --appendonly yes --appendfsync always; always=$port
start_redis everysec --appendonly yes --appendfsync everysec; everysec=$port
compare "tickdb,redis always,redis everysec" "$tickdb" "$always" "$everysec"
echo "$(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $(redis-server --version | cut -d' ' -f3), tickdb $("$BIN" --version | cut -d' ' -f2) $(git rev-parse --short HEAD)"
