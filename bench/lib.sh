# shellcheck shell=bash
# Shared by the benchmark scripts: a scratch directory and process list cleaned up on exit,
# free ports, waiting for a server, one redis-benchmark run, the comparison table, and the
# time-series ingest workloads (their 1,000 series and their commands).
# Expects REQUESTS, CLIENTS, TESTS and PIPELINES to be set by the caller.

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 1 300); do redis-cli -p "$1" PING >/dev/null 2>&1 && return 0; sleep 0.1; done; echo "port $1 did not come up" >&2; exit 1; }

# bench PORT P -> lines "test,rps"
bench() {
  redis-cli -p "$1" FLUSHALL >/dev/null
  redis-benchmark -p "$1" -t "$TESTS" -c "$CLIENTS" -n "$REQUESTS" -P "$2" -q --csv 2>/dev/null \
    | tail -n +2 | tr -d '"' | cut -d, -f1,2
}

# best_csv A B -> per test, the higher rate of the two "test,rps" files (A's order)
best_csv() {
  local test v w
  while IFS=, read -r test v; do
    w=$(grep "^$test," "$2" | cut -d, -f2)
    python3 -c "print('$test,' + max(['$v', '${w:-0}'], key=float))"
  done < "$1"
}

# compare "NAME0,NAME1,NAME2" PORT0 PORT1 PORT2 [first|rest]: benchmarks the three servers at
# each pipeline depth and prints a Markdown table with the ratios NAME0/NAME1 and NAME0/NAME2
# ("first", the default) or NAME1/NAME0 and NAME2/NAME0 ("rest"). With COMPARE_REPEAT=N the
# servers take N turns each, one after another, and each keeps its best rate per test.
compare() {
  IFS=, read -r n0 n1 n2 <<< "$1"
  local over=${5:-first} turn s port
  if [ "$over" = first ]; then r1="$n0 / $n1"; r2="$n0 / $n2"; else r1="$n1 / $n0"; r2="$n2 / $n0"; fi
  echo "| test | -P | $n0 req/s | $n1 req/s | $n2 req/s | $r1 | $r2 |"
  echo "| --- | --- | --- | --- | --- | --- | --- |"
  for p in $PIPELINES; do
    for turn in $(seq 1 "${COMPARE_REPEAT:-1}"); do
      s=0
      for port in "$2" "$3" "$4"; do
        bench "$port" "$p" > "$work/turn.csv"
        if [ "$turn" = 1 ]; then mv "$work/turn.csv" "$work/$s.csv"
        else best_csv "$work/$s.csv" "$work/turn.csv" > "$work/best.csv"; mv "$work/best.csv" "$work/$s.csv"; fi
        s=$((s + 1))
      done
    done
    while IFS=, read -r test v0; do
      v1=$(grep "^$test," "$work/1.csv" | cut -d, -f2)
      v2=$(grep "^$test," "$work/2.csv" | cut -d, -f2)
      if [ "$over" = first ]; then
        a=$(python3 -c "print(f'{$v0/$v1:.2f}')"); b=$(python3 -c "print(f'{$v0/$v2:.2f}')")
      else
        a=$(python3 -c "print(f'{$v1/$v0:.2f}')"); b=$(python3 -c "print(f'{$v2/$v0:.2f}')")
      fi
      echo "| $test | $p | $v0 | $v1 | $v2 | $a | $b |"
    done < "$work/0.csv"
  done
  echo
}

# rps < redis-benchmark -q output -> the last "requests per second" figure
rps() { grep -o '[0-9.]* requests per second' | awk '{print $1}' | tail -1; }

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

# The ingest workloads, as redis-benchmark sends them (it replaces each __rand_int__ by a
# 12-digit number below 1000, zero-padded). Keys: ts:000000000000 .. ts:000000000999.
VALUE=1__rand_int__
madd_cmd=(TS.MADD); for _ in $(seq 1 100); do madd_cmd+=("ts:__rand_int__" "*" "$VALUE"); done
add_cmd=(TS.ADD "ts:__rand_int__" "*" "$VALUE" ON_DUPLICATE LAST)
