#!/usr/bin/env bash
# Counts the server's user-space instructions per request under valgrind's callgrind:
# deterministic, unlike a timed run on a VM whose speed drifts (docs/benchmarks.md, Session 10).
# Starts BIN under callgrind with instrumentation off, creates 1,000 series, warms up with 2,000
# requests, then counts N requests of WORKLOAD (redis-benchmark, -r 1000).
#   bench/count_requests.sh BIN PORT WORKLOAD N OUT [tickdb flags...]
# WORKLOAD: add16 add1 madd set1 set16 get16 incr16. OUT: the callgrind file, for
# callgrind_annotate. CREATE_ARGS (environment) is added to each TS.CREATE, e.g.
# CREATE_ARGS="LABELS symbol AAPL exchange XNAS" for series with labels, as market data has.
# Needs valgrind (apt-get install valgrind), redis-benchmark and redis-py.
BIN=$1; PORT=$2; W=$3; N=$4; OUT=$5; shift 5
D=$(mktemp -d /tmp/cg.XXXX)
RUST_LOG=warn valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file=$OUT "$BIN" --port "$PORT" --zmq-port 0 --data-dir "$D/data" "$@" 2>"$D/log" &
PID=$!
for i in $(seq 600); do redis-cli -p $PORT ping >/dev/null 2>&1 && break; sleep 0.1; done
python3 - "$PORT" ${CREATE_ARGS:-} <<'PY'
import sys, redis
r = redis.Redis(port=int(sys.argv[1])); p = r.pipeline(transaction=False)
for i in range(1000): p.execute_command("TS.CREATE", f"ts:{i:012d}", "DUPLICATE_POLICY", "LAST", *sys.argv[2:])
p.execute()
PY
V=1__rand_int__
case $W in
  add16) cmd=(-c 50 -P 16 TS.ADD "ts:__rand_int__" "*" $V ON_DUPLICATE LAST);;
  add1) cmd=(-c 50 -P 1 TS.ADD "ts:__rand_int__" "*" $V ON_DUPLICATE LAST);;
  madd) cmd=(-c 4 -P 8 TS.MADD); for _ in $(seq 100); do cmd+=("ts:__rand_int__" "*" $V); done;;
  set1) cmd=(-c 50 -P 1 SET "k:__rand_int__" v);;
  set16) cmd=(-c 50 -P 16 SET "k:__rand_int__" v);;
  get16) cmd=(-c 50 -P 16 GET "k:__rand_int__");;
  incr16) cmd=(-c 50 -P 16 INCR "c:__rand_int__");;
esac
redis-benchmark -p $PORT -n 2000 -r 1000 -q "${cmd[@]}" >/dev/null
callgrind_control -i on $PID >/dev/null
redis-benchmark -p $PORT -n $N -r 1000 -q "${cmd[@]}" | grep -o '[0-9.]* requests per second' | tail -1
callgrind_control -i off $PID >/dev/null
echo "syncs: $(redis-cli -p $PORT info | tr -d '\r' | awk -F: '/^total_syncs:/ {print $2}')"
kill -TERM $PID; wait $PID
tot=$(callgrind_annotate $OUT 2>/dev/null | grep -m1 "PROGRAM TOTALS" | awk "{print \$1}" | tr -d ,)
echo "Ir total $tot  per request $((tot / N))"
rm -rf $D
