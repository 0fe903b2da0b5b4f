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


def check_compat(proto: int) -> None:
    """The RedisTimeSeries behaviours of issue 11 (redis.io examples), through redis-py and
    through a client without the ts() reply parsers (the wire shapes)."""
    r = redis.Redis(host="127.0.0.1", port=PORT, protocol=proto, decode_responses=True)
    raw = redis.Redis(host="127.0.0.1", port=PORT, protocol=proto, decode_responses=True)
    ts = r.ts()
    p = f"cx{proto}:"
    sa, sb, kind = p + "stock:A", p + "stock:B", p + "stock"
    ts.create(sa, labels={"type": kind, "name": "A"})
    ts.create(sb, labels={"type": kind, "name": "B"})
    for base in (1000, 2000, 3000):
        v = base // 10
        ts.madd([(sa, base, v), (sa, base + 10, v + 10), (sa, base + 20, v + 20)])
        ts.madd([(sb, base, v + 20), (sb, base + 10, v + 10), (sb, base + 20, v)])

    # Buckets aligned to 0 unless ALIGN says otherwise (redis.io TS.RANGE).
    rows = ts.range(sa, 1005, 1025, aggregation_type="min", bucket_size_msec=20)
    assert [(int(t), float(v)) for t, v in rows] == [(1000, 110.0), (1020, 120.0)], rows
    rows = ts.range(sa, 5, "+", aggregation_type="min", bucket_size_msec=20, align="-")
    assert [int(t) for t, _ in rows][:2] == [985, 1005], rows
    try:
        ts.range(sa, "-", "+", aggregation_type="min", bucket_size_msec=20, align="start")
        raise AssertionError("ALIGN start over '-' accepted")
    except redis.ResponseError as e:
        assert "start alignment can only be used with explicit start timestamp" in str(e), e

    # AGGREGATION then GROUPBY/REDUCE, and the group's wire shape.
    reply = raw.execute_command(
        "TS.MRANGE", "-", "+", "WITHLABELS", "AGGREGATION", "avg", 1000,
        "FILTER", f"type={kind}", "GROUPBY", "type", "REDUCE", "max",
    )
    name = f"type={kind}"
    if proto == 3:
        labels, reducers, sources, samples = reply[name]
        assert labels == {"type": kind}, labels
        assert reducers == {"reducers": ["max"]}, reducers
        assert sources == {"sources": [sa, sb]}, sources
    else:
        [[got_name, labels, samples]] = reply
        assert got_name == name, reply
        assert labels == [["type", kind], ["__reducer__", "max"], ["__source__", f"{sa},{sb}"]]
    assert [(int(t), float(v)) for t, v in samples] == [(1000, 110.0), (2000, 210.0), (3000, 310.0)]
    grouped = ts.mrange("-", "+", [f"type={kind}"], groupby="type", reduce="max")
    assert name in repr(grouped), grouped

    # EXCLUDEEMPTY (Redis 8.10).
    ts.create(p + "u", labels={"type": kind, "name": "U"})
    ts.add(p + "u", 9000, 1)
    keys = repr(raw.execute_command("TS.MRANGE", "-", 5000, "EXCLUDEEMPTY", "FILTER", f"type={kind}"))
    assert sa in keys and p + "u" not in keys, keys

    # TS.MADD answers per element and keeps the good samples.
    out = ts.madd([(sa, 4000, 1), (sa, 4001, "x"), (sa, 4002, 3)])
    assert out[0] == 4000 and out[2] == 4002, out
    assert isinstance(out[1], redis.ResponseError), out
    assert [int(t) for t, _ in ts.range(sa, 4000, 4002)] == [4000, 4002]

    # TS.INCRBY: creation options after TIMESTAMP; IGNORE applied.
    c = p + "ctr"
    assert raw.execute_command(
        "TS.INCRBY", c, 1, "TIMESTAMP", 1000, "RETENTION", 500, "UNCOMPRESSED", "LABELS", "a", "b"
    ) == 1000
    assert ts.incrby(p + "ign", 1.0, timestamp=1000, duplicate_policy="last",
                     ignore_max_time_diff=5, ignore_max_val_diff=10.0) == 1000
    assert ts.incrby(p + "ign", 3.0, timestamp=1000) == 1000
    assert float(ts.get(p + "ign")[1]) == 1.0

    # Values: +4 refused, NaN stored and counted; duplicatePolicy reported as block.
    try:
        raw.execute_command("TS.ADD", sa, 5000, "+4")
        raise AssertionError("+4 accepted")
    except redis.ResponseError as e:
        assert "TSDB: invalid value" in str(e), e
    n = p + "nan"
    assert ts.add(n, 1000, "NaN") == 1000
    assert ts.add(n, 1003, 25) == 1003
    rows = ts.range(n, 1000, 1006, aggregation_type="countNaN", bucket_size_msec=1000)
    assert [(int(t), float(v)) for t, v in rows] == [(1000, 1.0)], rows
    assert field_getter(ts.info(n))("duplicatePolicy", "duplicate_policy") == "block"

    # TS.NRANGE (Redis 8.10).
    rows = raw.execute_command("TS.NRANGE", 2, sa, sb, 1000, 1010)
    assert [int(row[0]) for row in rows] == [1000, 1010], rows
    assert [float(v) for v in rows[0][1]] == [100.0, 120.0], rows

    r.delete(sa, sb, p + "u", c, p + "ign", n)


check(2)
check(3)
check_compat(2)
check_compat(3)
print("RESP2 and RESP3 ts checks passed")
