#!/usr/bin/env bash
# One A/B turn: starts one tickdb binary on a fresh data directory, creates 1,000 series, runs
# one redis-benchmark workload against it, and prints the rate, the server's CPU per sample
# (user + system time of every thread, from /proc/PID/stat) and the requests per sync (INFO
# total_syncs). Alternate two builds or two settings turn by turn and compare within a pair:
# this machine's speed drifts by up to 1.5x between minutes.
#
#   bash bench/turn.sh BIN PORT WORKLOAD REQUESTS [server flags...]
#   WORKLOAD: add16 | add1 (TS.ADD -c 50 -P 16 / -P 1), madd (TS.MADD 100 samples, -c 4 -P 8),
#             set16 | set1 | get16 | incr16
#   e.g. for t in 1 2; do bash bench/turn.sh target/release/tickdb 7701 madd 15000
#        bash bench/turn.sh target/release/tickdb 7701 madd 15000 --pipelined-sync; done
#
# Needs redis-benchmark, redis-cli and redis-py (`make deps` installs them).
set -euo pipefail
if [ $# -lt 4 ]; then
    sed -n '2,13p' "$0"
    exit 2
fi
BIN=$(realpath "$1") PORT=$2 W=$3 N=$4
shift 4
cd "$(dirname "$0")/.."
. bench/lib.sh
RUST_LOG=warn "$BIN" --port "$PORT" --zmq-port 0 --data-dir "$work/data" "$@" 2>"$work/log" &
PID=$!
pids+=("$PID")
wait_port "$PORT"
make_series "$PORT"
per=1
case $W in
    add16) cmd=(-c 50 -P 16 "${add_cmd[@]}") ;;
    add1) cmd=(-c 50 -P 1 "${add_cmd[@]}") ;;
    madd) per=100; cmd=(-c 4 -P 8 "${madd_cmd[@]}") ;;
    set16) cmd=(-c 50 -P 16 SET "k:__rand_int__" v) ;;
    set1) cmd=(-c 50 -P 1 SET "k:__rand_int__" v) ;;
    get16) cmd=(-c 50 -P 16 GET "k:__rand_int__") ;;
    incr16) cmd=(-c 50 -P 16 INCR "c:__rand_int__") ;;
    *) echo "unknown workload $W" >&2; exit 2 ;;
esac
cpu() { awk '{print $14 + $15}' "/proc/$PID/stat"; }
c0=$(cpu)
rate=$(redis-benchmark -p "$PORT" -n "$N" -r 1000 -q "${cmd[@]}" | rps)
c1=$(cpu)
syncs=$(redis-cli -p "$PORT" info | tr -d '\r' | awk -F: '/^total_syncs:/ {print $2}')
python3 - "$W" "$rate" "$per" "$N" "$c0" "$c1" "${syncs:-0}" "$(getconf CLK_TCK)" <<'PY'
import sys
w, rate, per, n, c0, c1, syncs, tck = sys.argv[1:]
per, n, syncs, tck = int(per), int(n), int(syncs), int(tck)
samples = n * per
cpu_us = (int(c1) - int(c0)) / tck * 1e6
print(f"{w}: {float(rate) * per:.0f} samples/s, server CPU {cpu_us / samples:.2f} us/sample, "
      f"{n / max(1, syncs):.1f} requests/sync")
PY
