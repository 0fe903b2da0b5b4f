#!/usr/bin/env bash
# redis-benchmark against a three-node tickdb cluster on loopback (through the leader and
# through a follower, which forwards to the leader) and a standalone tickdb, side by side in
# the same run. Every node syncs its own disk: on one machine the three share it.
#
#   bash bench/cluster.sh
#   REQUESTS=50000 CLIENTS=50 TESTS=set,get bash bench/cluster.sh
#   TICKDB_FLAGS=--pipelined-sync bash bench/cluster.sh    # flags for every tickdb started
set -euo pipefail
cd "$(dirname "$0")/.."
REQUESTS=${REQUESTS:-100000}
CLIENTS=${CLIENTS:-50}
TESTS=${TESTS:-set,get,incr}
PIPELINES=${PIPELINES:-"1 16"}
TARGET=${CARGO_TARGET_DIR:-$HOME/.cache/tickdb-target}
BIN=${TICKDB_BIN:-$TARGET/release/tickdb}
[ -x "$BIN" ] || { echo "build first: cargo build --release -p tickdb-server" >&2; exit 1; }

. bench/lib.sh

ports=(); cports=(); members=""
for i in 1 2 3; do
  ports+=("$(free_port)"); cports+=("$(free_port)")
  members+="${members:+,}$i=127.0.0.1:${ports[-1]}@${cports[-1]}"
done
for i in 1 2 3; do
  # shellcheck disable=SC2086 # TICKDB_FLAGS is a list of flags
  RUST_LOG=warn "$BIN" --node-id "$i" --cluster-nodes "$members" --zmq-port 0 \
    --data-dir "$work/node$i" ${TICKDB_FLAGS:-} 2>"$work/node$i.log" &
  pids+=($!)
done
for p in "${ports[@]}"; do wait_port "$p"; done
single=$(free_port)
# shellcheck disable=SC2086
RUST_LOG=warn "$BIN" --port "$single" --zmq-port 0 --data-dir "$work/single" ${TICKDB_FLAGS:-} \
  2>"$work/single.log" &
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

compare "standalone,cluster via leader,cluster via follower" "$single" "$leader" "$follower" rest
echo "redis-benchmark -c $CLIENTS -n $REQUESTS, $(nproc) cores, 3 nodes + 1 standalone on one machine, tickdb $("$BIN" --version | awk '{print $2}')${TICKDB_FLAGS:+ $TICKDB_FLAGS}"
