#!/usr/bin/env bash
# ZeroMQ vs TCP requests/s on one tickdb node: starts tickdb on free ports with a fresh data
# directory, runs the zmq_bench example (1 and 50 clients, pipeline 1 and 16, SET and GET),
# prints a Markdown table, stops the server. ZMQ_BENCH_INGEST_ONLY=1 runs only the ingest table
# (samples/s, and the server's and the client's CPU per sample).
#   bench/zmq_bench.sh [seconds per cell, default 3]
# TICKDB_BIN=/path/to/tickdb benchmarks that binary instead of building tickdb-server.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${CARGO_TARGET_DIR:=$HOME/.cache/tickdb-target}"
export CARGO_TARGET_DIR
secs="${1:-3}"
# --workspace, not -p: a subset of packages unifies features differently from the workspace
# and rebuilds RocksDB's C++ (about 15 minutes) into a second copy.
if [[ -n "${TICKDB_BIN:-}" ]]; then
  cargo build --release --workspace --example zmq_bench >&2
else
  cargo build --release --workspace --bin tickdb --example zmq_bench >&2
fi
tickdb="${TICKDB_BIN:-$CARGO_TARGET_DIR/release/tickdb}"
data="$(mktemp -d)"
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
tcp_port="$(port)"
zmq_port="$(port)"
"$tickdb" --port "$tcp_port" --zmq-port "$zmq_port" --data-dir "$data/data" 2>"$data/log" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$tcp_port") 2>/dev/null && break
  sleep 0.1
done
TICKDB_PID="$pid" "$CARGO_TARGET_DIR/release/examples/zmq_bench" "tcp://127.0.0.1:$zmq_port" "127.0.0.1:$tcp_port" "$secs"
