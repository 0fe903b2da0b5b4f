#!/usr/bin/env python3
"""Issue 10's durability-and-space rows, for one tickdb binary:

  - load N tick samples (a random walk on a 0.01 tick, ms gaps) into S series with TS.MADD of
    10,000 samples per command, and report the rate;
  - the data directory's size per sample: the peak seen during the load (sampled every
    500,000 samples), live at the end, after kill -9, and after a restart and a clean stop;
  - how long a restart after kill -9 takes until it answers PING, and that it lost nothing
    acknowledged (every series holds every sample).

    python3 bench/load_restart.py [--bin PATH] [--samples 10000000] [--series 100] [--port P]

The default binary is $CARGO_TARGET_DIR/release/tickdb (~/.cache/tickdb-target). Needs
redis-py (make deps installs it). Nothing here builds anything.
"""
import argparse, os, random, shutil, signal, socket, subprocess, sys, tempfile, time

import redis

from benchlib import free_port, wait_ping


def main():
    target = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/tickdb-target"))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.path.join(target, "release", "tickdb"))
    ap.add_argument("--samples", type=int, default=10_000_000)
    ap.add_argument("--series", type=int, default=100)
    ap.add_argument("--port", type=int, default=0)
    a = ap.parse_args()
    port = a.port or free_port()
    work = tempfile.mkdtemp(prefix="tickdb-load-")
    data = os.path.join(work, "data")
    log = open(os.path.join(work, "log"), "a")

    def start():
        p = subprocess.Popen([a.bin, "--port", str(port), "--zmq-port", "0", "--data-dir", data],
                             stderr=log, env=dict(os.environ, RUST_LOG="info"))
        return p, wait_ping(port, p, f"tickdb (log in {work}/log)")

    def size():
        return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(data) for f in fs)

    def stored(r):
        return sum(r.ts().info(f"t{s}").total_samples for s in range(a.series))

    n, series = a.samples, a.series
    p, _ = start()
    try:
        r = redis.Redis(port=port)
        for s in range(series):
            r.execute_command("TS.CREATE", f"t{s}")
        random.seed(7)
        ts, px = [1_700_000_000_000] * series, [100.0] * series
        args, peak, t0 = [], 0, time.time()
        for i in range(1, n + 1):
            s = i % series
            ts[s] += random.choice([1, 1, 2, 3, 5, 8, 13, 40, 250])
            px[s] = round(px[s] + random.choice([-0.02, -0.01, 0, 0, 0.01, 0.02]), 2)
            args += [f"t{s}", ts[s], px[s]]
            if i % 10_000 == 0 or i == n:
                r.execute_command("TS.MADD", *args)
                args = []
                if i % 500_000 == 0:
                    peak = max(peak, size())
        load_s = time.time() - t0
        live = size()
        peak = max(peak, live)
        acked = stored(r)
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
        killed = size()
        p, restart_s = start()
        after = stored(redis.Redis(port=port))
        t1 = time.time()
        p.send_signal(signal.SIGTERM)
        p.wait()
        stop_s = time.time() - t1
        stopped = size()
    finally:
        if p.poll() is None:
            p.kill()
    print(f"| samples loaded (TS.MADD of 10,000, {series} series) | {n:,} in {load_s:.1f} s ({n / load_s:,.0f}/s) |")
    print(f"| data directory, peak during the load (bytes/sample) | {peak / n:.2f} |")
    print(f"| data directory, live at the end (bytes/sample) | {live / n:.2f} |")
    print(f"| data directory after kill -9 (bytes/sample) | {killed / n:.2f} |")
    print(f"| restart after kill -9 until PING answers (s) | {restart_s:.2f} |")
    print(f"| samples after the restart, of those acknowledged | {after:,} of {acked:,} |")
    print(f"| clean stop (SIGTERM until exit, s) | {stop_s:.2f} |")
    print(f"| data directory after the clean stop (bytes/sample) | {stopped / n:.2f} |")
    shutil.rmtree(work)
    if after != acked or acked != n:
        sys.exit(f"lost samples: {acked} acknowledged of {n}, {after} after the restart")


if __name__ == "__main__":
    main()
