#!/usr/bin/env python3
"""Interleaved A/B benchmark: one workload against two servers, turn by turn.

This machine's speed drifts by up to 1.5x within minutes, so two servers measured minutes
apart cannot be compared. This script starts both servers once, prepares each the same way,
then alternates short redis-benchmark runs between them (A, B, A, B, ...) and reports, per
side, the rate and the server's CPU per request (user + system time of all its threads, from
/proc/PID/stat), and the median of the per-pair ratios B / A. A pair's two runs are seconds
apart, so drift cancels within a pair.

A side is a tickdb binary (with flags), or a peer:
  --a BIN[,FLAG...]       a tickdb binary, started on a fresh data directory
  --a redis               Debian's redis-server, in memory
  --a redis-always        redis-server with appendfsync always
  --a rts[-always]        redis-server with RedisTimeSeries (RTS_MODULE=path/to/.so)
  --a valkey-ts           valkey-server (VALKEY_SERVER) with valkey-timeseries (VALKEY_TS_MODULE)
Environment for a tickdb side: --a-env NAME=VALUE (repeatable), likewise --b-env.

  python3 bench/ab.py --a target/release/tickdb --b rts --workload add16 --requests 200000 --pairs 6

Workloads: add16, add1 (TS.ADD -c 50 -P 16 / -P 1 over 1,000 series), madd (TS.MADD with 100
samples per command, -c 4 -P 8), set16, set1, get16, incr16; and one client's reads of a
1,000,000-sample tick series (bench/ingest.sh's): revrange (TS.REVRANGE - + COUNT 1000), tsget,
rangeavg (TS.RANGE avg, 1-minute buckets), whose rate ratio is the inverse latency ratio.
Needs redis-benchmark and redis-py (`make deps`).
"""

import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile

import redis

from benchlib import cpu_seconds, free_port, load_ticks, wait_ping

VALUE = "1__rand_int__"
BIG = "big"
BIG_SAMPLES = 1_000_000
MADD = ["TS.MADD"] + ["ts:__rand_int__", "*", VALUE] * 100
WORKLOADS = {
    # name: (redis-benchmark arguments, samples per request, what to prepare: True for the
    # 1,000 empty series, BIG for the loaded series, False for nothing)
    "add16": (["-c", "50", "-P", "16", "TS.ADD", "ts:__rand_int__", "*", VALUE,
               "ON_DUPLICATE", "LAST"], 1, True),
    "add1": (["-c", "50", "-P", "1", "TS.ADD", "ts:__rand_int__", "*", VALUE,
              "ON_DUPLICATE", "LAST"], 1, True),
    "madd": (["-c", "4", "-P", "8"] + MADD, 100, True),
    "set16": (["-c", "50", "-P", "16", "SET", "k:__rand_int__", "v"], 1, False),
    "set1": (["-c", "50", "-P", "1", "SET", "k:__rand_int__", "v"], 1, False),
    "get16": (["-c", "50", "-P", "16", "GET", "k:__rand_int__"], 1, False),
    "incr16": (["-c", "50", "-P", "16", "INCR", "c:__rand_int__"], 1, False),
    # Latest-N and aggregated reads of one 1,000,000-sample tick series, one client at a time
    # (the latency targets; the rate of one client is the inverse of its latency).
    "revrange": (["-c", "1", "TS.REVRANGE", "big", "-", "+", "COUNT", "1000"], 1, BIG),
    "tsget": (["-c", "1", "TS.GET", "big"], 1, BIG),
    "rangeavg": (["-c", "1", "TS.RANGE", "big", "-", "+", "AGGREGATION", "avg", "60000"], 1,
                 BIG),
}


class Side:
    def __init__(self, spec, env, work, name):
        self.spec, self.name = spec, name
        self.port = free_port()
        self.dir = os.path.join(work, name)
        os.makedirs(self.dir)
        kind = spec.split(",")[0]
        redis_server = shutil.which("redis-server") or "redis-server"
        if kind in ("redis", "redis-always", "rts", "rts-always"):
            args = [redis_server, "--port", str(self.port), "--bind", "127.0.0.1",
                    "--dir", self.dir, "--save", ""]
            if kind.endswith("always"):
                args += ["--appendonly", "yes", "--appendfsync", "always"]
            if kind.startswith("rts"):
                args += ["--loadmodule", need_env("RTS_MODULE")]
        elif kind == "valkey-ts":
            args = [need_env("VALKEY_SERVER"), "--port", str(self.port), "--bind", "127.0.0.1",
                    "--dir", self.dir, "--save", "", "--loadmodule", need_env("VALKEY_TS_MODULE")]
        else:
            parts = spec.split(",")
            args = [os.path.realpath(parts[0]), "--port", str(self.port), "--zmq-port", "0",
                    "--data-dir", os.path.join(self.dir, "data")] + parts[1:]
        full_env = dict(os.environ, RUST_LOG="warn")
        full_env.update(env)
        self.log = open(os.path.join(self.dir, "log"), "w")
        self.proc = subprocess.Popen(args, env=full_env, stdout=self.log, stderr=self.log)
        wait_ping(self.port, self.proc, f"{name} ({spec}, log in {self.dir}/log)")
        self.client = redis.Redis(port=self.port)
        self.runs = []  # (rate, cpu us per request)

    def prepare(self, series):
        if series == BIG:
            load_ticks(self.port, BIG, BIG_SAMPLES)
        elif series:
            p = self.client.pipeline(transaction=False)
            for i in range(1000):
                p.execute_command("TS.CREATE", f"ts:{i:012d}", "DUPLICATE_POLICY", "LAST")
            p.execute()

    def cpu_seconds(self):
        return cpu_seconds(self.proc.pid)

    def run(self, bench_args, requests):
        c0 = self.cpu_seconds()
        out = subprocess.run(["redis-benchmark", "-p", str(self.port), "-n", str(requests),
                              "-r", "1000", "-q"] + bench_args,
                             capture_output=True, text=True, check=True).stdout
        c1 = self.cpu_seconds()
        rates = re.findall(r"([0-9.]+) requests per second", out)
        if not rates:
            sys.exit(f"no rate from redis-benchmark against {self.name}: {out!r}")
        self.runs.append((float(rates[-1]), (c1 - c0) * 1e6 / requests))

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def need_env(name):
    v = os.environ.get(name)
    if not v:
        sys.exit(f"set {name}")
    return v


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--a", required=True)
    ap.add_argument("--b", required=True)
    ap.add_argument("--a-env", action="append", default=[])
    ap.add_argument("--b-env", action="append", default=[])
    ap.add_argument("--workload", required=True, choices=sorted(WORKLOADS))
    ap.add_argument("--requests", type=int, default=100000, help="per run")
    ap.add_argument("--pairs", type=int, default=6)
    o = ap.parse_args()
    bench_args, per, series = WORKLOADS[o.workload]
    work = tempfile.mkdtemp(prefix="ab.")
    sides = []
    try:
        for name, spec, env in (("A", o.a, o.a_env), ("B", o.b, o.b_env)):
            sides.append(Side(spec, dict(e.split("=", 1) for e in env), work, name))
        for s in sides:
            s.prepare(series)
        # One warm-up run each, not counted: first-touch allocations, lazy thread start.
        for s in sides:
            s.run(bench_args, max(min(1000, o.requests), o.requests // 10))
            s.runs.clear()
        for i in range(o.pairs):
            order = sides if i % 2 == 0 else sides[::-1]
            for s in order:
                s.run(bench_args, o.requests)
        a, b = sides
        unit = "sample" if per > 1 else "request"
        print(f"{o.workload}, {o.pairs} pairs of {o.requests} requests, order alternating")
        for s in sides:
            rates = [r * per for r, _ in s.runs]
            cpus = [c / per for _, c in s.runs]
            print(f"  {s.name} {s.spec}: {statistics.median(rates):,.0f} {unit}s/s "
                  f"(runs {min(rates):,.0f}-{max(rates):,.0f}), server CPU "
                  f"{statistics.median(cpus):.2f} us/{unit} "
                  f"(runs {min(cpus):.2f}-{max(cpus):.2f})")
        rate_r = [rb / ra for (ra, _), (rb, _) in zip(a.runs, b.runs)]
        cpu_r = [cb / ca for (_, ca), (_, cb) in zip(a.runs, b.runs)]
        if series == BIG:
            for s in sides:
                ms = [1000 / r for r, _ in s.runs]
                print(f"  {s.name} mean latency of one client: median {statistics.median(ms):.3f} ms "
                      f"(runs {min(ms):.3f}-{max(ms):.3f})")
        print(f"  B / A rate: median {statistics.median(rate_r):.2f} "
              f"(pairs {' '.join(f'{x:.2f}' for x in rate_r)})")
        print(f"  B / A CPU per {unit}: median {statistics.median(cpu_r):.2f} "
              f"(pairs {' '.join(f'{x:.2f}' for x in cpu_r)})")
    finally:
        for s in sides:
            s.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
