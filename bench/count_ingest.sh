#!/usr/bin/env bash
# Counts the server's user-space instructions per sample under valgrind's callgrind, for
# zmq_bench's ingest shapes over TCP: 4 clients, 250 series each, 800 samples a round trip as
# 800 BATCH_SET + BATCH_FLUSH (batch) or 8 TS.MADD of 100 (madd), after 5 warm-up rounds.
# 300 rounds (960,000 samples) fill every head several times, so sealing is counted; 50 do not.
#   bench/count_ingest.sh BIN PORT batch|madd ROUNDS OUT [tickdb flags...]
# CREATE_ARGS (environment) is added to each TS.CREATE (bench/count_requests.sh).
# Needs valgrind (apt-get install valgrind).
BIN=$1; PORT=$2; W=$3; R=$4; OUT=$5; shift 5
D=$(mktemp -d /tmp/cg.XXXX)
RUST_LOG=warn valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file=$OUT "$BIN" --port "$PORT" --zmq-port 0 --data-dir "$D/data" "$@" 2>"$D/log" &
PID=$!
for i in $(seq 600); do redis-cli -p $PORT ping >/dev/null 2>&1 && break; sleep 0.1; done
python3 - "$PORT" "$W" "$R" "$PID" ${CREATE_ARGS:-} <<'PY'
import sys, socket, subprocess, threading
port, w, rounds, pid = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
create_args = sys.argv[5:]
def req(*a):
    out = [b"*%d\r\n" % len(a)]
    for x in a:
        x = x if isinstance(x, bytes) else str(x).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(x), x))
    return b"".join(out)
def payload(c, seq):
    if w == "batch":
        p = [req("BATCH_SET", f"s:{c}:{(seq+j)%250}", "100.25", 1700000000000+seq+j) for j in range(800)]
        return b"".join(p) + req("BATCH_FLUSH"), 801
    p = []
    for k in range(8):
        a = ["TS.MADD"]
        for j in range(100):
            s = seq + k*100 + j
            a += [f"s:{c}:{s%250}", 1700000000000+s, "100.25"]
        p.append(req(*a))
    return b"".join(p), 8
def count(buf):
    # replies are simple strings, integers or arrays of integers: count top-level replies
    n = 0; i = 0
    while True:
        j = buf.find(b"\r\n", i)
        if j < 0: return n, i
        if buf[i:i+1] == b"*":
            k = int(buf[i+1:j]); e = j + 2
            for _ in range(k):
                e2 = buf.find(b"\r\n", e)
                if e2 < 0: return n, i
                e = e2 + 2
            n += 1; i = e
        else:
            n += 1; i = j + 2
def run(c, rounds, seq0, socks):
    s = socks[c]; seq = seq0
    for _ in range(rounds):
        p, want = payload(c, seq); s.sendall(p); got = 0; buf = b""
        while got < want:
            buf += s.recv(1 << 20); n, used = count(buf); got += n; buf = buf[used:]
        seq += 800
socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(4)]
setup = socket.create_connection(("127.0.0.1", port))
setup.sendall(b"".join(req("TS.CREATE", f"s:{c}:{i}", *create_args) for c in range(4) for i in range(250)))
got = 0
while got < 1000:
    got += setup.recv(1 << 20).count(b"\r\n")
def phase(rounds, seq0):
    ts = [threading.Thread(target=run, args=(c, rounds, seq0, socks)) for c in range(4)]
    [t.start() for t in ts]; [t.join() for t in ts]
phase(5, 0)
subprocess.run(["callgrind_control", "-i", "on", pid], capture_output=True)
phase(rounds, 5 * 800)
subprocess.run(["callgrind_control", "-i", "off", pid], capture_output=True)
PY
kill -TERM $PID; wait $PID
tot=$(callgrind_annotate $OUT 2>/dev/null | grep -m1 "PROGRAM TOTALS" | awk "{print \$1}" | tr -d ,)
echo "Ir total $tot  per sample $((tot / (R * 4 * 800)))"
rm -rf $D
