#!/usr/bin/env python3
"""Issue 10's durability-and-space rows, for one tickdb binary:

  - load N tick samples (a random walk on a 0.01 tick, ms gaps) into S series with TS.MADD of
    10,000 samples per command, and report the rate;
  - the data directory's size per sample: the peak seen during the load (sampled every
    0.1 s by a thread, with what it was made of: RocksDB's WAL files, SST files, the rest),
    live at the end, after kill -9, and after a restart and a clean stop; and the peak beside
    the size a clean stop leaves, overall and for the samples loaded at the peak's moment;
  - how long a restart after kill -9 takes until it answers PING, and that it lost nothing
    acknowledged (every series holds every sample).

    python3 bench/load_restart.py [--bin PATH] [--samples 10000000] [--series 100] [--port P]

The default binary is $CARGO_TARGET_DIR/release/tickdb (~/.cache/tickdb-target). Needs
redis-py (make deps installs it). Nothing here builds anything.
"""
import argparse, os, random, re, shutil, signal, socket, subprocess, sys, tempfile, threading, time

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

    def kinds():
        """Bytes in the data directory by kind: WAL (NNNNNN.log), SST, the rest."""
        out = {"wal": 0, "sst": 0, "other": 0}
        for d, _, fs in os.walk(data):
            for f in fs:
                try:
                    n = os.path.getsize(os.path.join(d, f))
                except FileNotFoundError:  # RocksDB deleted it meanwhile
                    continue
                k = "wal" if re.fullmatch(r"\d+\.log", f) else "sst" if f.endswith(".sst") else "other"
                out[k] += n
        return out

    def size():
        return sum(kinds().values())

    class Peak(threading.Thread):
        """The largest directory size seen while loading, its parts, and the samples sent then."""
        def __init__(self):
            super().__init__(daemon=True)
            self.stop, self.sent, self.best = threading.Event(), 0, ({"wal": 0, "sst": 0, "other": 0}, 0)

        def run(self):
            while not self.stop.wait(0.1):
                sent, k = self.sent, kinds()
                if sum(k.values()) > sum(self.best[0].values()):
                    self.best = (k, sent)

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
        args, t0 = [], time.time()
        watch = Peak()
        watch.start()
        for i in range(1, n + 1):
            s = i % series
            ts[s] += random.choice([1, 1, 2, 3, 5, 8, 13, 40, 250])
            px[s] = round(px[s] + random.choice([-0.02, -0.01, 0, 0, 0.01, 0.02]), 2)
            args += [f"t{s}", ts[s], px[s]]
            if i % 10_000 == 0 or i == n:
                r.execute_command("TS.MADD", *args)
                args = []
                watch.sent = i
        load_s = time.time() - t0
        watch.stop.set()
        watch.join()
        live = size()
        (parts, peak_sent) = watch.best
        peak = sum(parts.values())
        if live > peak:
            parts, peak_sent, peak = kinds(), n, live
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
    mib = lambda b: f"{b / 2**20:.1f}"
    print(f"| peak: MiB of WAL / SST / other files, after samples sent | {mib(parts['wal'])} / {mib(parts['sst'])} / {mib(parts['other'])}, after {peak_sent:,} |")
    print(f"| data directory, live at the end (bytes/sample) | {live / n:.2f} |")
    print(f"| data directory after kill -9 (bytes/sample) | {killed / n:.2f} |")
    print(f"| restart after kill -9 until PING answers (s) | {restart_s:.2f} |")
    print(f"| samples after the restart, of those acknowledged | {after:,} of {acked:,} |")
    print(f"| clean stop (SIGTERM until exit, s) | {stop_s:.2f} |")
    print(f"| data directory after the clean stop (bytes/sample) | {stopped / n:.2f} |")
    # What the samples loaded at the peak's moment would take after a clean stop, at the
    # final stopped size per sample (the first MADD's peak compares with almost nothing).
    then = stopped / n * max(peak_sent, 1)
    print(f"| peak / stopped size: of all samples, of those loaded at the peak | {peak / stopped:.1f}x, {peak / then:.1f}x |")
    shutil.rmtree(work)
    if after != acked or acked != n:
        sys.exit(f"lost samples: {acked} acknowledged of {n}, {after} after the restart")


if __name__ == "__main__":
    main()
