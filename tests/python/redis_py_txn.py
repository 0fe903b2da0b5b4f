"""redis-py's transactional pipelines and identity probes against a running tickdb, in RESP2 and
RESP3. Exits non-zero on failure.

Usage: TICKDB_PORT=6379 python3 redis_py_txn.py
"""

import os

import redis

PORT = int(os.environ["TICKDB_PORT"])


def check(proto: int) -> None:
    r = redis.Redis(host="127.0.0.1", port=PORT, protocol=proto, decode_responses=True)
    other = redis.Redis(host="127.0.0.1", port=PORT, protocol=proto, decode_responses=True)
    p = f"txn{proto}:"

    # What redis-py's own test suite probes at start: INFO's arch_bits and modules.
    info = r.info()
    assert info["arch_bits"] == 64, info
    assert info["redis_version"], info
    mods = {m["name"]: m["ver"] for m in info["modules"]}
    assert mods.get("timeseries", 0) >= 11000, info["modules"]
    listed = r.module_list()
    names = [m.get("name") or m.get(b"name") for m in listed]
    assert "timeseries" in names, listed

    # The default pipeline is a transaction (MULTI ... EXEC).
    pipe = r.pipeline()
    pipe.set(p + "a", 1).incr(p + "a").get(p + "a").incrby(p + "a", 5)
    assert pipe.execute() == [True, 2, "2", 7]

    # A command that fails when it runs fails alone; the others ran.
    pipe = r.pipeline()
    pipe.set(p + "s", "text").incr(p + "s").set(p + "t", 1)
    res = pipe.execute(raise_on_error=False)
    assert res[0] is True and res[2] is True, res
    assert isinstance(res[1], redis.ResponseError), res
    assert r.get(p + "t") == "1"

    # An unknown command aborts the whole transaction at EXEC.
    pipe = r.pipeline()
    pipe.set(p + "never", 1)
    pipe.execute_command("NOSUCHCOMMAND")
    try:
        pipe.execute()
        raise AssertionError("EXEC ran a transaction with a queue-time error")
    except redis.ResponseError as e:
        assert "EXECABORT" in str(e) or "unknown command" in str(e), e
    assert r.get(p + "never") is None

    # r.ts().pipeline() is a transaction too.
    ts = r.ts()
    tp = ts.pipeline()
    tp.create(p + "ts", labels={"kind": p})
    tp.add(p + "ts", 1000, 1.5)
    tp.add(p + "ts", 2000, 2.5)
    tp.range(p + "ts", "-", "+")
    tp.get(p + "ts")
    res = tp.execute()
    assert res[0] is True and res[1] == 1000 and res[2] == 2000, res
    assert [list(x) for x in res[3]] == [[1000, 1.5], [2000, 2.5]], res
    assert list(res[4]) == [2000, 2.5], res

    # WATCH: optimistic locking with retries, as redis-py documents it.
    r.set(p + "balance", 100)
    pipe = r.pipeline()
    pipe.watch(p + "balance")
    balance = int(pipe.get(p + "balance"))
    other.set(p + "balance", 50)  # someone else changes it
    pipe.multi()
    pipe.set(p + "balance", balance - 10)
    try:
        pipe.execute()
        raise AssertionError("EXEC ran although a watched key changed")
    except redis.WatchError:
        pass
    assert r.get(p + "balance") == "50"

    def withdraw(pipe):
        balance = int(pipe.get(p + "balance"))
        pipe.multi()
        pipe.set(p + "balance", balance - 10)

    assert r.transaction(withdraw, p + "balance") == [True]
    assert r.get(p + "balance") == "40"

    # Non-transactional pipelines still work.
    pipe = r.pipeline(transaction=False)
    pipe.set(p + "x", 1).get(p + "x")
    assert pipe.execute() == [True, "1"]


for proto in (2, 3):
    check(proto)
print("transaction and identity checks passed")
