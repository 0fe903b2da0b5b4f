"""redis-py's r.ts() against a running tickdb, in RESP2 and RESP3. Exits non-zero on failure.

Usage: TICKDB_PORT=6379 python3 redis_py_ts.py
"""

import os

import redis

PORT = int(os.environ["TICKDB_PORT"])


def field_getter(info):
    """TS.INFO comes back as redis-py's TSInfo (RESP2) or the server's map (RESP3)."""
    if isinstance(info, dict):
        return lambda wire, _attr: info[wire]
    return lambda _wire, attr: getattr(info, attr)


def check(proto: int) -> None:
    r = redis.Redis(host="127.0.0.1", port=PORT, protocol=proto, decode_responses=True)
    ts = r.ts()
    p = f"py{proto}:"
    a, b, agg, day = p + "a", p + "b", p + "agg", p + "day"

    assert ts.create(a, retention_msecs=0, labels={"sym": "A", "kind": p + "stock"}) is True
    assert ts.create(b, labels={"sym": "B", "kind": p + "stock"}, duplicate_policy="last")
    try:
        ts.create(a)
        raise AssertionError("duplicate create accepted")
    except redis.ResponseError as e:
        assert "TSDB: key already exists" in str(e), e

    # add, madd, incrby
    assert ts.add(a, 1000, 10.5) == 1000
    assert ts.add(a, 2000, 11.25) == 2000
    assert ts.madd([(a, 3000, 12), (b, 1000, 100), (b, 2000, 101)]) == [3000, 1000, 2000]
    assert ts.add(b, 2000, 102) == 2000  # LAST policy overwrites
    assert ts.incrby(p + "ctr", 5, timestamp=10) == 10
    assert ts.incrby(p + "ctr", 2, timestamp=10) == 10
    assert ts.get(p + "ctr")[1] == 7.0

    # range, revrange, aggregation, OHLC
    rows = ts.range(a, "-", "+")
    assert [(int(t), float(v)) for t, v in rows] == [(1000, 10.5), (2000, 11.25), (3000, 12.0)], rows
    rev = ts.revrange(a, "-", "+", count=2)
    assert [int(t) for t, _ in rev] == [3000, 2000], rev
    summed = ts.range(a, 0, 5000, aggregation_type="sum", bucket_size_msec=2000)
    assert [(int(t), float(v)) for t, v in summed] == [(0, 10.5), (2000, 23.25)], summed
    avg_rev = ts.revrange(a, "-", "+", aggregation_type="avg", bucket_size_msec=2000)
    assert [int(t) for t, _ in avg_rev] == [2000, 0], avg_rev
    ohlc = r.execute_command("TS.RANGE", a, "-", "+", "AGGREGATION", "first,max,min,last", 10000)
    assert len(ohlc) == 1 and len(ohlc[0]) == 5, ohlc
    assert [float(x) for x in ohlc[0][1:]] == [10.5, 12.0, 10.5, 12.0], ohlc

    # get, mget with filters
    t, v = ts.get(a)
    assert (int(t), float(v)) == (3000, 12.0)
    mget = ts.mget([f"kind={p}stock"], with_labels=True)
    text = repr(mget)
    assert a in text and b in text and "102" in text, mget

    # mrange with filter, labels and aggregation
    mr = ts.mrange("-", "+", [f"kind={p}stock", "sym=(A,B)"], with_labels=True)
    text = repr(mr)
    assert a in text and b in text and "11.25" in text, mr
    mrev = ts.mrevrange("-", "+", [f"kind={p}stock"], aggregation_type="max", bucket_size_msec=10000)
    assert "102" in repr(mrev), mrev
    grouped = ts.mrange("-", "+", [f"kind={p}stock"], groupby="kind", reduce="sum")
    assert f"kind={p}stock" in repr(grouped), grouped

    # queryindex
    keys = ts.queryindex([f"kind={p}stock", "sym!=B"])
    assert list(keys) == [a], keys

    # createrule over existing data (tickdb computes it at once), then info
    ts.create(agg)
    assert ts.createrule(a, agg, "sum", 2000) is True
    assert [(int(t), float(v)) for t, v in ts.range(agg, "-", "+")] == [(0, 10.5)], ts.range(agg, "-", "+")
    ts.add(a, 4500, 1)
    assert [int(t) for t, _ in ts.range(agg, "-", "+")] == [0, 2000]
    info = field_getter(ts.info(a))
    assert info("totalSamples", "total_samples") == 4
    assert info("firstTimestamp", "first_timestamp") == 1000
    assert info("lastTimestamp", "last_timestamp") == 4500
    assert info("memoryUsage", "memory_usage") > 0
    assert info("chunkCount", "chunk_count") >= 1
    assert info("labels", "labels")["sym"] == "A"
    assert agg in repr(info("rules", "rules"))
    assert field_getter(ts.info(agg))("sourceKey", "source_key") == a

    # chained rule (a destination feeds a coarser rule) and deleterule
    ts.create(day)
    assert ts.createrule(agg, day, "max", 10000) is True
    assert ts.deleterule(agg, day) is True

    # delete range
    assert ts.delete(a, 0, 1500) == 1
    assert ts.range(a, 0, 1500) == []

    # alter labels moves the index entries
    assert ts.alter(b, labels={"sym": "B", "kind": p + "fx"}) is True
    assert list(ts.queryindex([f"kind={p}stock"])) == [a]

    # label discovery
    names = ts.querylabels(filters=[f"kind=({p}stock,{p}fx)"])
    assert set(names) == {"sym", "kind"}, names
    values = ts.querylabels("sym", filters=[f"kind=({p}stock,{p}fx)"])
    assert set(values) == {"A", "B"}, values

    # errors with documented texts
    for bad, text in [
        (lambda: ts.range(p + "nope", "-", "+"), "TSDB: the key does not exist"),
        (lambda: ts.add(a, 4500, 2), "DUPLICATE_POLICY is set to BLOCK"),
        (lambda: ts.add(a, "x", 2), "TSDB: invalid timestamp"),
    ]:
        try:
            bad()
            raise AssertionError(f"no error for {text}")
        except redis.ResponseError as e:
            assert text in str(e), e

    assert r.type(a) == "TSDB-TYPE"
    assert r.delete(a, b, agg, day, p + "ctr") == 5
    assert list(ts.queryindex([f"kind={p}stock"])) == []


check(2)
check(3)
print("RESP2 and RESP3 ts checks passed")
