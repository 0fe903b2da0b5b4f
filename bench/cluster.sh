#!/usr/bin/env bash
# redis-benchmark against a three-node tickdb cluster on loopback (through the leader and
# through a follower, which forwards to the leader) and a standalone tickdb, side by side in
# the same run. Every node syncs its own disk: on one machine the three share it.
#
#   bash bench/cluster.sh
#   REQUESTS=50000 CLIENTS=50 TESTS=set,get bash bench/cluster.sh
set -euo pipefail
cd "$(dirname "$0")/.."
REQUESTS=${REQUESTS:-100000}
CLIENTS=${CLIENTS:-50}
TESTS=${TESTS:-set,get,incr}
PIPELINES=${PIPELINES:-"1 16"}
TARGET=${CARGO_TARGET_DIR:-$HOME/.cache/tickdb-target}
BIN=${TICKDB_BIN:-$TARGET/release/tickdb}
[ -x "$BIN" ] || { echo "build first: cargo build --release -p tickdb-server" >&2; exit 1; }

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 1 300); do redis-cli -p "$1" PING >/dev/null 2>&1 && return 0; sleep 0.1; done; echo "port $1 did not come up" >&2; exit 1; }

ports=(); cports=(); members=""
for i in 1 2 3; do
  ports+=("$(free_port)"); cports+=("$(free_port)")
  members+="${members:+,}$i=127.0.0.1:${ports[-1]}@${cports[-1]}"
done
for i in 1 2 3; do
  RUST_LOG=warn "$BIN" --node-id "$i" --cluster-nodes "$members" --zmq-port 0 \
    --data-dir "$work/node$i" 2>"$work/node$i.log" &
  pids+=($!)
done
for p in "${ports[@]}"; do wait_port "$p"; done
single=$(free_port)
RUST_LOG=warn "$BIN" --port "$single" --zmq-port 0 --data-dir "$work/single" 2>"$work/single.log" &
pids+=($!); wait_port "$single"

leader=""; follower=""
for _ in $(seq 1 200); do
  for p in "${ports[@]}"; do
    if redis-cli -p "$p" INFO replication | grep -q '^role:master'; then leader=$p; fi
  done
  [ -n "$leader" ] && break; sleep 0.1
done
[ -n "$leader" ] || { echo "no leader elected" >&2; exit 1; }
for p in "${ports[@]}"; do [ "$p" != "$leader" ] && { follower=$p; break; }; done

bench() {
  redis-benchmark -p "$1" -t "$TESTS" -c "$CLIENTS" -n "$REQUESTS" -P "$2" -q --csv 2>/dev/null \
    | tail -n +2 | tr -d '"' | cut -d, -f1,2
}

echo "| test | -P | standalone req/s | cluster via leader req/s | cluster via follower req/s | leader / standalone | follower / standalone |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
for p in $PIPELINES; do
  bench "$single" "$p" > "$work/s.csv"
  bench "$leader" "$p" > "$work/l.csv"
  bench "$follower" "$p" > "$work/f.csv"
  while IFS=, read -r test rps; do
    l=$(grep "^$test," "$work/l.csv" | cut -d, -f2)
    f=$(grep "^$test," "$work/f.csv" | cut -d, -f2)
    rl=$(python3 -c "print(f'{$l/$rps:.2f}')")
    rf=$(python3 -c "print(f'{$f/$rps:.2f}')")
    echo "| $test | $p | $rps | $l | $f | $rl | $rf |"
  done < "$work/s.csv"
done
echo
echo "redis-benchmark -c $CLIENTS -n $REQUESTS, $(nproc) cores, 3 nodes + 1 standalone on one machine, tickdb $("$BIN" --version | awk '{print $2}')"
