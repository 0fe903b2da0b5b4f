"""TS.MADD ingest, TS.RANGE and TS.MRANGE timing, and bytes per sample against a running tickdb
(see bench/ts.sh)."""

import random
import sys
import time

import redis

r = redis.Redis(port=int(sys.argv[1]), decode_responses=True)


def load(key, samples, batch=10_000):
    """Loads (ts, value) pairs with BATCH_SET/BATCH_FLUSH, 10,000 per atomic entry."""
    pipe = r.pipeline(transaction=False)
    for i, (ts, v) in enumerate(samples, 1):
        pipe.execute_command("BATCH_SET", key, v, ts)
        if i % batch == 0:
            pipe.execute_command("BATCH_FLUSH")
            pipe.execute()
    pipe.execute_command("BATCH_FLUSH")
    pipe.execute()


def info(key):
    i = r.ts().info(key)
    return {"totalSamples": i.total_samples, "memoryUsage": i.memory_usage}


# (a) tick feed: random walk on a 0.01 tick, irregular millisecond gaps.
random.seed(7)
ts, px, ticks = 1_700_000_000_000, 100.0, []
for _ in range(1_000_000):
    ts += random.choice([1, 1, 2, 3, 5, 8, 13, 40, 250])
    px = round(px + random.choice([-0.02, -0.01, 0, 0, 0.01, 0.02]), 2)
    ticks.append((ts, px))
t0 = time.perf_counter()
load("bench:ticks", ticks)
load_s = time.perf_counter() - t0
# (b) a regular 1-second series.
load("bench:regular", [(1_700_000_000_000 + i * 1000, float(i % 97)) for i in range(1_000_000)])

print()
print(f"BATCH_SET/BATCH_FLUSH load of 1,000,000 ticks: {load_s:.1f} s ({1e6 / load_s:,.0f} samples/s)")
print()
print("| query over 1,000,000 samples (redis-py, reply parsing included) | ms |")
print("| --- | --- |")
for name, args in [
    ("TS.RANGE raw", ["TS.RANGE", "bench:ticks", "-", "+"]),
    ("TS.RANGE AGGREGATION avg 60000", ["TS.RANGE", "bench:ticks", "-", "+", "AGGREGATION", "avg", 60000]),
    ("TS.RANGE AGGREGATION first,max,min,last 60000", ["TS.RANGE", "bench:ticks", "-", "+", "AGGREGATION", "first,max,min,last", 60000]),
]:
    best = min(
        (lambda: (lambda t: (r.execute_command(*args), time.perf_counter() - t)[1])(time.perf_counter()))()
        for _ in range(3)
    )
    print(f"| {name} | {best * 1000:.0f} |")
print()
print("| series | samples | memoryUsage bytes | bytes/sample |")
print("| --- | --- | --- | --- |")
for key in ["bench:ticks", "bench:regular"]:
    i = info(key)
    n, m = i["totalSamples"], i["memoryUsage"]
    print(f"| {key} | {n} | {m} | {m / n:.2f} |")


# TS.MADD in batches of 100 samples across 1,000 series (pipeline of 16 batches per round trip).
SERIES, BATCH, ROUNDS, DEPTH = 1_000, 100, 200, 16
for i in range(SERIES):
    r.ts().create(f"bench:m:{i}", labels={"bench": "madd", "shard": str(i % 10)})
base = 1_700_000_000_000
t0 = time.perf_counter()
sent = 0
for rnd in range(ROUNDS):
    pipe = r.pipeline(transaction=False)
    for b in range(DEPTH):
        k = rnd * DEPTH + b
        args = []
        for j in range(BATCH):
            n = k * BATCH + j
            args += [f"bench:m:{n % SERIES}", base + (n // SERIES) * 1000, n % 997]
        pipe.execute_command("TS.MADD", *args)
        sent += BATCH
    pipe.execute()
madd_s = time.perf_counter() - t0
print()
print(f"TS.MADD, batches of {BATCH} across {SERIES:,} series, {DEPTH} batches per round trip: "
      f"{sent:,} samples in {madd_s:.2f} s ({sent / madd_s:,.0f} samples/s)")

# TS.MRANGE over the 1,000 series just loaded.
print()
print(f"| TS.MRANGE over {SERIES:,} series ({sent // SERIES} samples each) | ms |")
print("| --- | --- |")
for name, args in [
    ("raw", ["TS.MRANGE", "-", "+", "FILTER", "bench=madd"]),
    ("AGGREGATION avg 60000", ["TS.MRANGE", "-", "+", "AGGREGATION", "avg", 60000, "FILTER", "bench=madd"]),
    ("GROUPBY shard REDUCE max", ["TS.MRANGE", "-", "+", "FILTER", "bench=madd", "GROUPBY", "shard", "REDUCE", "max"]),
]:
    times = []
    for _ in range(3):
        t = time.perf_counter()
        reply = r.execute_command(*args)
        times.append(time.perf_counter() - t)
    assert len(reply) in (SERIES, 10), len(reply)
    print(f"| {name} | {min(times) * 1000:.0f} |")
