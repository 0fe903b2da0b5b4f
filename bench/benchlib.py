"""Helpers the bench scripts share: a free port, waiting for a server to answer, loading a
tick series (`python3 bench/benchlib.py load-ticks PORT KEY N` from a shell script) and waiting
for servers to go idle (`python3 bench/benchlib.py wait-idle PID...`)."""
import os, random, socket, sys, time

import redis


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ping(port, proc, what, timeout=120):
    """Seconds until the server on `port` answers PING; exits if `proc` dies or `timeout` passes
    (`what` names the server, and where its log is, in the message)."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        try:
            redis.Redis(port=port).ping()
            return time.time() - t0
        except redis.ConnectionError:
            if proc.poll() is not None:
                sys.exit(f"{what} exited with {proc.returncode}")
            time.sleep(0.02)
    sys.exit(f"{what} did not answer within {timeout} s")


def load_ticks(port, key, n):
    """Creates `key` and loads `n` tick samples into it: a random walk on a 0.01 tick with
    millisecond gaps (seeded, so every server gets the same series), as TS.MADD of 10,000
    samples per command (one log entry each in tickdb)."""
    r = redis.Redis(port=port)
    r.execute_command("TS.CREATE", key)
    rng = random.Random(7)
    ts, px, args = 1_700_000_000_000, 100.0, []
    for i in range(1, n + 1):
        ts += rng.choice([1, 1, 2, 3, 5, 8, 13, 40, 250])
        px = round(px + rng.choice([-0.02, -0.01, 0, 0, 0.01, 0.02]), 2)
        args += [key, ts, px]
        if i % 10_000 == 0 or i == n:
            r.execute_command("TS.MADD", *args)
            args = []


def cpu_seconds(pid):
    """CPU time (user + system, all threads) process `pid` has used, in seconds; None once it
    is gone. /proc/PID/stat's utime and stime are in clock ticks (SC_CLK_TCK)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_idle(pids, busy=0.05, window=1.0, timeout=60):
    """Waits until every process of `pids` used less than `busy` of a core over `window`
    seconds, for at most `timeout` seconds; returns the seconds waited. After a load, tickdb
    checkpoints and RocksDB flushes and compacts in the background; a turn measured while that
    runs measures the background work too (the next peer's turn as well as tickdb's)."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        before = [cpu_seconds(p) for p in pids]
        time.sleep(window)
        after = [cpu_seconds(p) for p in pids]
        used = [a - b for a, b in zip(after, before) if a is not None and b is not None]
        if all(u < busy * window for u in used):
            break
    return time.time() - t0


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "load-ticks":
        load_ticks(int(sys.argv[2]), sys.argv[3], int(sys.argv[4]))
    elif len(sys.argv) >= 2 and sys.argv[1] == "wait-idle":
        waited = wait_idle([int(p) for p in sys.argv[2:]])
        print(f"{waited:.1f}")
    else:
        sys.exit("usage: benchlib.py load-ticks PORT KEY N | wait-idle PID...")
