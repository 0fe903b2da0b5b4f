#!/usr/bin/env bash
# BATCH_SET/BATCH_FLUSH and the ZeroMQ endpoint against TS.MADD over TCP (issue 10's target),
# each cell on a fresh server: zmq_bench's ingest shapes (4 clients, 1,000 series, 800 samples
# a round trip) as 8 TS.MADD of 100 or as 800 BATCH_SET + BATCH_FLUSH, over TCP and ZeroMQ.
# Cells run one after another on one server (bench/zmq_bench.sh) pay for the earlier cells'
# memtable flushes and compactions, so the order decided a good part of the ratios. Here each
# of the four cells gets its own server and data directory, the order rotates from repeat to
# repeat, and the table gives each cell's median and every ratio's range over the repeats.
#   bench/ingest_paths.sh [seconds per cell, default 10] [repeats, default 3]
# Cells of 3 s spread by ±20% over repeats on this machine (their first second is the
# server's warm-up); cells of 10 s by a few percent (docs/benchmarks.md, "Session 15").
# TICKDB_BIN=/path/to/tickdb measures that binary instead of building tickdb-server; extra
# server flags in TICKDB_FLAGS (say "--threads 2").
# The client: INGEST_CLIENT=c (the default) is bench/ingest_client.c, plain sockets and libzmq
# (the reference ZeroMQ library, which pyzmq and most bindings wrap), compiled here;
# INGEST_CLIENT=rust is zmq_bench, tokio tasks with the pure-Rust `zeromq` crate, whose DEALER
# costs more CPU per sample than its TCP client, CPU taken from the server on two cores.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${CARGO_TARGET_DIR:=$HOME/.cache/tickdb-target}"
export CARGO_TARGET_DIR
secs="${1:-10}"
repeats="${2:-3}"
client="${INGEST_CLIENT:-c}"
# --workspace, not -p: a subset of packages unifies features differently and rebuilds RocksDB.
if [[ -z "${TICKDB_BIN:-}" ]]; then
  cargo build --release --workspace --bin tickdb >&2
fi
tickdb="${TICKDB_BIN:-$CARGO_TARGET_DIR/release/tickdb}"
case "$client" in
  rust)
    cargo build --release --workspace --example zmq_bench >&2
    bench="$CARGO_TARGET_DIR/release/examples/zmq_bench"
    ;;
  c)
    bench="$CARGO_TARGET_DIR/ingest_client"
    cc -O2 -Wall -o "$bench" bench/ingest_client.c -lzmq -lpthread
    ;;
  *) echo "INGEST_CLIENT is c or rust" >&2; exit 1 ;;
esac
# run_cell TCP_PORT ZMQ_PORT PID CELL: one line of name=value fields
run_cell() {
  if [[ "$client" = rust ]]; then
    ZMQ_BENCH_CELL="$4" TICKDB_PID="$3" "$bench" "tcp://127.0.0.1:$2" "127.0.0.1:$1" "$secs"
    return
  fi
  local before after line samples
  before=$(cpu_seconds "$3")
  line=$("$bench" "${4%%:*}" "${4##*:}" "127.0.0.1:$1" "tcp://127.0.0.1:$2" 4 "$secs")
  after=$(cpu_seconds "$3")
  samples=$(python3 -c "import sys; print(dict(x.split('=') for x in sys.argv[1].split())['samples'])" "$line")
  echo "cell=$4 $line server_us=$(python3 -c "print(f'{($after - $before) * 1e6 / max($samples, 1):.3f}')")"
}
# cpu_seconds PID -> user + system seconds the process has used (benchlib.cpu_seconds)
cpu_seconds() { python3 -c "import sys; sys.path.insert(0, 'bench'); import benchlib; print(benchlib.cpu_seconds($1))"; }
work="$(mktemp -d)"
pid=
stop() {
  if [[ -n "$pid" ]]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  pid=
}
trap 'stop; rm -rf "$work"' EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cells=(madd:tcp batch:tcp madd:zmq batch:zmq)
for ((r = 0; r < repeats; r++)); do
  for ((i = 0; i < ${#cells[@]}; i++)); do
    cell="${cells[$(((i + r) % ${#cells[@]}))]}"
    tcp_port="$(port)"
    zmq_port="$(port)"
    rm -rf "$work/data"
    # shellcheck disable=SC2086
    "$tickdb" --port "$tcp_port" --zmq-port "$zmq_port" --data-dir "$work/data" ${TICKDB_FLAGS:-} 2>"$work/log" &
    pid=$!
    for _ in $(seq 100); do
      (exec 3<>"/dev/tcp/127.0.0.1/$tcp_port") 2>/dev/null && break
      sleep 0.1
    done
    echo "repeat=$r $(run_cell "$tcp_port" "$zmq_port" "$pid" "$cell")" | tee -a "$work/results" >&2
    stop
  done
done
python3 - "$work/results" <<'PY'
import statistics, sys
rows = [dict(f.split("=", 1) for f in line.split()) for line in open(sys.argv[1])]
by = {}
for r in rows:
    by.setdefault(r["cell"], []).append(r)
def med(cell, field):
    vals = [float(r[field]) for r in by.get(cell, []) if r[field] != "?"]
    return statistics.median(vals) if vals else float("nan")
def ratios(cell):
    per = {}
    for r in rows:
        per.setdefault(r["repeat"], {})[r["cell"]] = float(r["rate"])
    got = [p[cell] / p["madd:tcp"] for p in per.values() if cell in p and "madd:tcp" in p]
    return f"{min(got):.2f}–{max(got):.2f}" if got else "?"
base = med("madd:tcp", "rate")
print("| cell (median of %d, fresh server each) | samples/s | / TCP TS.MADD (median) | range over repeats | server CPU µs/sample | client CPU µs/sample |" % len(by.get("madd:tcp", [])))
print("| --- | ---: | ---: | ---: | ---: | ---: |")
names = {"madd:tcp": "TS.MADD over TCP", "batch:tcp": "BATCH over TCP", "madd:zmq": "TS.MADD over ZeroMQ", "batch:zmq": "BATCH over ZeroMQ"}
for cell in ["madd:tcp", "batch:tcp", "madd:zmq", "batch:zmq"]:
    rate = med(cell, "rate")
    print(f"| {names[cell]} | {rate:.0f} | {rate / base:.2f} | {ratios(cell)} | {med(cell, 'server_us'):.2f} | {med(cell, 'client_us'):.2f} |")
PY
