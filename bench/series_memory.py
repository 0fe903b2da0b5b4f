#!/usr/bin/env python3
"""Issue 10's memory row: resident memory per active series, for tickdb and (when given) the
peers, each a fresh server measured the same way in this one run.

For each server: start it, read its resident set size (VmRSS of the process), create N series
with two labels each (TS.CREATE ... LABELS sym S<i> venue XNAS), give every series one sample,
then K more samples each (TS.MADD of 1,000 samples per command), reading the RSS after each
step. Reports (RSS - RSS at start) / N in bytes per series after each step; tickdb is then
stopped cleanly and restarted, and its RSS read again (what a restart holds for the same
series: nothing held since the last checkpoint).

    python3 bench/series_memory.py [--bin PATH] [--series 100000] [--samples 10]
        [--rts-module PATH] [--valkey-server PATH --valkey-ts-module PATH]

The default binary is $CARGO_TARGET_DIR/release/tickdb (~/.cache/tickdb-target). Needs
redis-py (make deps installs it) and redis-server for the RTS column. Nothing here builds
anything.
"""
import argparse, os, shutil, socket, subprocess, sys, tempfile, time

import redis

from benchlib import free_port, wait_ping


def rss(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def load(port, n, k):
    """Creates n series, then 1 + k samples each; yields (step, samples per series) after each."""
    r = redis.Redis(port=port)
    p = r.pipeline(transaction=False)
    for i in range(n):
        p.execute_command("TS.CREATE", f"m:{i}", "LABELS", "sym", f"S{i}", "venue", "XNAS")
        if i % 1000 == 999:
            p.execute()
    p.execute()
    yield "created", 0
    base = 1_700_000_000_000
    for j in range(1 + k):
        args = []
        for i in range(n):
            args += [f"m:{i}", base + j * 1000, 100 + (i + j) % 7 * 0.01]
            if len(args) == 3000:
                r.execute_command("TS.MADD", *args)
                args = []
        if args:
            r.execute_command("TS.MADD", *args)
        if j == 0:
            yield "1 sample each", 1
    yield f"{1 + k} samples each", 1 + k
    keys = int(r.execute_command("DBSIZE"))
    if keys != n:
        sys.exit(f"expected {n} keys, DBSIZE says {keys}")


def main():
    target = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/tickdb-target"))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.path.join(target, "release", "tickdb"))
    ap.add_argument("--series", type=int, default=100_000)
    ap.add_argument("--samples", type=int, default=10)
    ap.add_argument("--rts-module")
    ap.add_argument("--valkey-server")
    ap.add_argument("--valkey-ts-module")
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="tickdb-mem-")
    rows = {}

    def measure(name, argv, restart=False):
        port = free_port()
        log = open(os.path.join(work, f"{name}.log"), "a")
        cmd = [c.replace("PORT", str(port)) for c in argv]
        p = subprocess.Popen(cmd, stdout=log, stderr=log, env=dict(os.environ, RUST_LOG="warn"))
        wait_ping(port, p, name)
        start = rss(p.pid)
        out = [("at start (MiB)", f"{start / 2**20:.1f}")]
        for step, _ in load(port, a.series, a.samples):
            out.append((step, f"{(rss(p.pid) - start) / a.series:.0f}"))
        if restart:
            p.terminate()
            p.wait()
            p = subprocess.Popen(cmd, stdout=log, stderr=log, env=dict(os.environ, RUST_LOG="warn"))
            wait_ping(port, p, name)
            redis.Redis(port=port).execute_command("TS.GET", "m:0")
            out.append(("after a clean restart", f"{(rss(p.pid) - start) / a.series:.0f}"))
        p.terminate()
        p.wait()
        rows[name] = dict(out)

    data = os.path.join(work, "tickdb")
    measure("tickdb", [a.bin, "--port", "PORT", "--zmq-port", "0", "--data-dir", data], restart=True)
    redis_args = ["--port", "PORT", "--bind", "127.0.0.1", "--save", "", "--dir", work, "--daemonize", "no"]
    if a.rts_module:
        measure("RTS", ["redis-server", *redis_args, "--loadmodule", a.rts_module])
    if a.valkey_server and a.valkey_ts_module:
        measure("valkey-ts", [a.valkey_server, *redis_args, "--loadmodule", a.valkey_ts_module])
    names = list(rows)
    steps = list(rows["tickdb"])
    print(f"| resident memory, {a.series:,} series (bytes per series over the start) | " + " | ".join(names) + " |")
    print("| --- |" + " --- |" * len(names))
    for s in steps:
        print(f"| {s} | " + " | ".join(rows[n].get(s, "") for n in names) + " |")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
