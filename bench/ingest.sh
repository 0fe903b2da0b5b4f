#!/usr/bin/env bash
# The table of issue 10 (ingest and latest-N reads), measured side by side in one run:
#   - TS.MADD, 100 samples per command, 4 connections, 8 in flight, 1,000 series
#   - TS.ADD across 1,000 series, 50 connections, -P 16 and -P 1
#   - TS.REVRANGE key - + COUNT 1000, TS.GET and TS.RANGE avg 1-min on a 1,000,000-sample series
#   - the data directory after loading that series, and after a clean stop
#   - SET / INCR / GET -P 16 beside redis-server `appendfsync always` and `everysec`
#     (per-request overhead)
#   - BATCH_SET + BATCH_FLUSH and the ZeroMQ endpoint against TS.MADD over TCP
#     (bench/ingest_paths.sh: a fresh tickdb per cell; PATHS=0 skips it)
# Every ingest workload runs on redis-benchmark (a C client), so the client is not the limit.
# redis-benchmark does not look at replies, so the script does: before every turn of every
# workload on every peer it sends one command of exactly that shape with redis-cli and aborts
# if the reply or any element of it is an error, and after every ingest turn it sums
# TS.INFO totalSamples over the 1,000 series and aborts unless the turn stored some samples
# (and no more than it sent). The stored counts are printed with the table: `*` timestamps
# and DUPLICATE_POLICY LAST fold the samples of one series stamped in the same millisecond.
# Values are `1__rand_int__` (1000000000000 + 0..999): a bare `__rand_int__` expands to a
# zero-padded `000000000123`, which RedisTimeSeries and tickdb refuse as a value.
#
# Peers: Debian's redis-server `always` and `everysec` (plain commands only: it has no TS.*
# commands). When RTS_MODULE names a RedisTimeSeries module file, redis-server with it loaded
# gets two columns for the TS rows (in memory, and `appendfsync always`); valkey-server with
# valkey-timeseries gets one when VALKEY_SERVER and VALKEY_TS_MODULE name them; BASE_BIN adds
# an earlier tickdb build. Every
# peer runs in this same run, taking turns workload by workload (REPEAT rounds, best result
# kept). Nothing here builds a peer.
#
#   bash bench/ingest.sh                 # TICKDB_BIN or $CARGO_TARGET_DIR/release/tickdb
#   BASE_BIN=/path/to/older/tickdb bash bench/ingest.sh      # adds a before/after column
#   RTS_MODULE=/usr/lib/redis/modules/redistimeseries.so bash bench/ingest.sh
#   VALKEY_SERVER=/path/valkey-server VALKEY_TS_MODULE=/path/libvalkey_timeseries.so \
#     bash bench/ingest.sh
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
REPEAT=${REPEAT:-3}

. bench/lib.sh

start_tickdb() { # start_tickdb BIN
  port=$(free_port)
  RUST_LOG=warn "$1" --port "$port" --zmq-port 0 --data-dir "$work/tickdb-$port" 2>"$work/tickdb-$port.log" &
  pids+=($!); tickdb_pid=$!; wait_port "$port"
}
start_redis() { # start_redis NAME ARGS...
  start_server redis-server "${@:2}"
}
start_server() { # start_server SERVER-BINARY ARGS... (redis-server or valkey-server)
  port=$(free_port); mkdir -p "$work/redis-$port"
  "$1" --port "$port" --bind 127.0.0.1 --dir "$work/redis-$port" --save '' \
    --daemonize no --logfile "$work/redis-$port.log" "${@:2}" &
  pids+=($!); wait_port "$port"
}

# ratio A B -> A / B, from the leading number of each ("134.6 (130.2)" counts as 134.6)
ratio() { python3 -c "a,b='$1'.split(' ')[0],'$2'.split(' ')[0]; print(f'{float(a)/float(b):.2f}' if a and b else '')"; }


# check_shape NAME PORT CMD...: one command of the workload's shape, every __rand_int__ made
# 000000000007; aborts the run if the reply, or any element of it, is an error.
check_shape() {
  local a args=() reply
  for a in "${@:3}"; do args+=("${a//__rand_int__/000000000007}"); done
  reply=$(redis-cli --no-raw -p "$2" "${args[@]}" 2>&1) || true
  if [ -z "$reply" ] || grep -q '(error)' <<< "$reply"; then
    echo "$1 answers an error to the workload's command ($3 ...):" >&2
    grep -m 3 '(error)' <<< "$reply" >&2 || echo "(empty reply)" >&2
    exit 1
  fi
}
# stored_samples PORT -> totalSamples summed over the 1,000 ingest series
stored_samples() {
  python3 - "$1" <<'EOF'
import sys, redis
r = redis.Redis(port=int(sys.argv[1]))
p = r.pipeline(transaction=False)
for i in range(1000):
    p.execute_command("TS.INFO", f"ts:{i:012d}")
total = 0
for info in p.execute():  # a map, or (RESP2 without redis-py's callbacks) a flat list
    d = info if isinstance(info, dict) else dict(zip(info[::2], info[1::2]))
    total += int(d[b"totalSamples"])
print(total)
EOF
}
# info_field PORT KEY FIELD -> one TS.INFO field
info_field() {
  python3 - "$@" <<'EOF'
import sys, redis
info = redis.Redis(port=int(sys.argv[1])).execute_command("TS.INFO", sys.argv[2])
d = info if isinstance(info, dict) else dict(zip(info[::2], info[1::2]))
print(int(d[sys.argv[3].encode()]))
EOF
}

declare -A STORED SENT
# ingest I KEY SAMPLES-PER-COMMAND REQUESTS REDIS-BENCHMARK-OPTIONS... : one turn of an ingest
# workload on peer I, checked, timed and its stored samples counted. Runs in this shell, not
# in $(...), so that its checks end the run.
ingest() {
  local i=$1 key=$2 per=$3 n=$4 port=${ports[$1]} cmd before after r stored
  if [ "$key" = madd ]; then cmd=("${madd_cmd[@]}"); else cmd=("${add_cmd[@]}"); fi
  check_shape "${names[$i]}" "$port" "${cmd[@]}"
  quiet
  before=$(stored_samples "$port")
  r=$(redis-benchmark -p "$port" -n "$n" -r 1000 -q "${@:5}" "${cmd[@]}" | rps)
  after=$(stored_samples "$port")
  stored=$((after - before))
  if [ "$stored" -le 0 ] || [ "$stored" -gt $((n * per)) ]; then
    echo "${names[$i]}: a $key turn stored $stored samples of $((n * per)) sent" >&2; exit 1
  fi
  STORED[$i,$key]=$((${STORED[$i,$key]:-0} + stored))
  SENT[$i,$key]=$((${SENT[$i,$key]:-0} + n * per))
  best "$i,$key" higher "$(python3 -c "print(f'{float($r) * $per:.0f}')")"
}
# quiet: waits (at most 60 s) until every tickdb of the run is idle. After a turn, a tickdb
# checkpoints, and RocksDB flushes and compacts, in the background; a turn measured meanwhile,
# its own or the next peer's, would measure that work too.
quiet() {
  local p live=()
  for p in "${ppids[@]}"; do [ -n "$p" ] && live+=("$p"); done
  [ ${#live[@]} -eq 0 ] || python3 bench/benchlib.py wait-idle "${live[@]}" >/dev/null
}
# latency_ms PORT N ARGS... -> mean latency of one client, ms (check_shape the command first)
latency_ms() {
  local r
  r=$(redis-benchmark -p "$1" -n "$2" -c 1 -q "${@:3}" | rps)
  python3 -c "print(f'{1000 / float($r):.2f}')"
}
# load_series PORT KEY N: N tick samples (random walk on a 0.01 tick, ms gaps), TS.MADD of
# 10,000 samples per command (one log entry each in tickdb).
load_series() {
  python3 bench/benchlib.py load-ticks "$1" "$2" "$3"
}

# The TS peers, in column order: tickdb, then (when given) an earlier tickdb build,
# RedisTimeSeries and valkey-timeseries. Every one runs each workload in this same run.
names=(tickdb); bins=("$BIN")
[ -n "${BASE_BIN:-}" ] && { names+=("tickdb before"); bins+=("$BASE_BIN"); }
# RedisTimeSeries twice: in memory (the issue's ingest bar) and with `appendfsync always`, which
# acknowledges only what is fsynced, as tickdb does (the bar for TS.ADD -P 1).
[ -n "${RTS_MODULE:-}" ] && { names+=("RTS in memory" "RTS appendfsync always"); bins+=(rts rts-always); }
if [ -n "${VALKEY_SERVER:-}" ] || [ -n "${VALKEY_TS_MODULE:-}" ]; then
  if ! [ -x "${VALKEY_SERVER:-}" ] || ! [ -f "${VALKEY_TS_MODULE:-}" ]; then
    echo "VALKEY_SERVER and VALKEY_TS_MODULE must both name files" >&2; exit 1
  fi
  names+=("valkey-ts in memory"); bins+=(valkey)
fi
start_peer() { # start_peer INDEX -> $port, $peer_pid (tickdb only)
  case ${bins[$1]} in
    rts) start_redis rts --loadmodule "$RTS_MODULE"; peer_pid= ;;
    rts-always) start_redis rts --loadmodule "$RTS_MODULE" --appendonly yes --appendfsync always; peer_pid= ;;
    valkey) start_server "$VALKEY_SERVER" --loadmodule "$VALKEY_TS_MODULE"; peer_pid= ;;
    *) start_tickdb "${bins[$1]}"; peer_pid=$tickdb_pid ;;
  esac
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
  for i in "${!names[@]}"; do ingest "$i" madd 100 "$MADD_REQUESTS" -c 4 -P 8; done
  for i in "${!names[@]}"; do ingest "$i" add16 1 "$REQUESTS" -c "$CLIENTS" -P 16; done
  for i in "${!names[@]}"; do ingest "$i" add1 1 "$REQUESTS" -c "$CLIENTS" -P 1; done
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
  n=$(info_field "$port" big totalSamples)
  [ "$n" = "$SERIES_SAMPLES" ] || { echo "${names[$i]} stored $n of $SERIES_SAMPLES samples" >&2; exit 1; }
  mem=$(info_field "$port" big memoryUsage)
  V[$i,mem]=$(python3 -c "print(f'{$mem/$SERIES_SAMPLES:.2f}')")
done
rev=(TS.REVRANGE big - + COUNT 1000); get=(TS.GET big); agg=(TS.RANGE big - + AGGREGATION avg 60000)
for _ in $(seq 1 "$REPEAT"); do
  for i in "${!names[@]}"; do
    p=${ports[$i]}
    quiet
    check_shape "${names[$i]}" "$p" "${rev[@]}"
    best "$i,rev" lower "$(latency_ms "$p" 500 "${rev[@]}")"
    check_shape "${names[$i]}" "$p" "${get[@]}"
    best "$i,get" lower "$(latency_ms "$p" 5000 "${get[@]}")"
    check_shape "${names[$i]}" "$p" "${agg[@]}"
    best "$i,agg" lower "$(latency_ms "$p" 50 "${agg[@]}")"
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
row() { # row LABEL KEY higher|lower|none
  local line="| $1 |"
  for i in "${!names[@]}"; do line+=" ${V[$i,$2]:-} |"; done
  for i in "${!names[@]}"; do
    [ "$i" = 0 ] && continue
    case $3 in
      higher) line+=" $(ratio "${V[0,$2]:-}" "${V[$i,$2]:-}") |" ;;
      lower) line+=" $(ratio "${V[$i,$2]:-}" "${V[0,$2]:-}") |" ;;
      *) line+=" |" ;;
    esac
  done
  echo "$line"
}
for i in "${!names[@]}"; do
  for k in madd add16 add1; do
    V[$i,$k-stored]=$(python3 -c "s, n = ${STORED[$i,$k]}, ${SENT[$i,$k]}; print(f'{s:,} of {n:,} ({100 * s / n:.0f} %)')")
  done
done
row "TS.MADD 100 samples per command, 4 connections, 8 in flight, 1,000 series (samples/s)" madd higher
row "TS.ADD across 1,000 series, -c $CLIENTS -P 16 (samples/s)" add16 higher
row "TS.ADD across 1,000 series, -c $CLIENTS -P 1 (samples/s)" add1 higher
row "samples stored of sent, all TS.MADD turns (TS.INFO totalSamples)" madd-stored none
row "samples stored of sent, all TS.ADD -P 16 turns" add16-stored none
row "samples stored of sent, all TS.ADD -P 1 turns" add1-stored none
row "TS.REVRANGE key - + COUNT 1000 on a $SERIES_SAMPLES-sample series (ms)" rev lower
row "TS.GET on that series (ms)" get lower
row "TS.RANGE avg over $SERIES_SAMPLES samples, 1-min buckets (ms)" agg lower
row "data directory after $SERIES_SAMPLES samples, then after a clean stop (bytes/sample)" dir lower
row "TS.INFO memoryUsage of that series (bytes/sample)" mem lower
echo
echo "(best of $REPEAT turns per peer; ratios: how many times better tickdb is, for latencies the peer's time over tickdb's; latencies are the mean of one redis-benchmark client; stored of sent: samples of one series stamped \"*\" in the same millisecond fold into one, DUPLICATE_POLICY LAST)"
echo
start_tickdb "$BIN"; tickdb=$port
start_redis always --appendonly yes --appendfsync always; always=$port
start_redis everysec --appendonly yes --appendfsync everysec; everysec=$port
COMPARE_REPEAT=$REPEAT compare "tickdb,redis always,redis everysec" "$tickdb" "$always" "$everysec"
if [ "${PATHS:-1}" != 0 ]; then
  echo
  echo "BATCH_SET + BATCH_FLUSH and the ZeroMQ endpoint against TS.MADD over TCP (bench/ingest_paths.sh, PATHS=0 skips it):"
  echo
  TICKDB_BIN="$BIN" bash bench/ingest_paths.sh "${PATHS_SECS:-10}" "${PATHS_REPEATS:-3}" 2>/dev/null
fi
echo "$(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $(redis-server --version | cut -d' ' -f3), tickdb $("$BIN" --version | cut -d' ' -f2) $(git rev-parse --short HEAD)"
