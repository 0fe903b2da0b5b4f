"""redis-py's pub/sub against tickdb, in RESP2 and RESP3: SUBSCRIBE/PSUBSCRIBE confirmations,
messages, PUBLISH's receiver count, PUBSUB, PING in subscribed mode, UNSUBSCRIBE, and keyspace
notifications for string and time-series writes. TICKDB_PORT names the server."""

import os
import time

import redis

PORT = int(os.environ["TICKDB_PORT"])


def take(p, n, timeout=5.0):
    """The next n messages of pubsub `p` (fails if they do not come in time)."""
    out = []
    deadline = time.time() + timeout
    while len(out) < n and time.time() < deadline:
        m = p.get_message(timeout=0.2)
        if m is not None:
            out.append(m)
    assert len(out) == n, f"wanted {n} messages, got {out}"
    return out


def check(proto):
    r = redis.Redis(port=PORT, protocol=proto)
    p = r.pubsub()
    p.subscribe("ch")
    p.psubscribe("c*")
    got = take(p, 2)
    assert [(m["type"], m["channel"], m["data"]) for m in got] == [
        ("subscribe", b"ch", 1),
        ("psubscribe", b"c*", 2),
    ], got
    assert r.publish("ch", "hi") == 2
    got = take(p, 2)
    assert [(m["type"], m["pattern"], m["channel"], m["data"]) for m in got] == [
        ("message", None, b"ch", b"hi"),
        ("pmessage", b"c*", b"ch", b"hi"),
    ], got
    assert r.pubsub_numsub("ch", "none") == [(b"ch", 1), (b"none", 0)]
    assert r.pubsub_numpat() == 1
    assert r.pubsub_channels() == [b"ch"]
    p.ping()
    (pong,) = take(p, 1)
    assert pong["type"] == "pong", pong
    p.unsubscribe()
    p.punsubscribe()
    got = take(p, 2)
    assert [(m["type"], m["data"]) for m in got] == [
        ("unsubscribe", 1),
        ("punsubscribe", 0),
    ], got
    p.close()

    r.config_set("notify-keyspace-events", "KEA")
    assert r.config_get("notify-keyspace-events") == {"notify-keyspace-events": "AKE"}
    p = r.pubsub(ignore_subscribe_messages=True)
    p.psubscribe("__keyevent@0__:*")
    p.subscribe(f"__keyspace@0__:ts{proto}")
    time.sleep(0.2)
    r.set(f"k{proto}", "v")
    r.ts().add(f"ts{proto}", 1000, 1.0)
    r.ts().incrby(f"ts{proto}", 1, timestamp=2000)
    r.delete(f"k{proto}")
    got = take(p, 6)
    pairs = [(m["channel"], m["data"]) for m in got]
    ts = f"ts{proto}".encode()
    assert pairs == [
        (b"__keyevent@0__:set", f"k{proto}".encode()),
        (b"__keyspace@0__:" + ts, b"ts.add"),
        (b"__keyevent@0__:ts.add", ts),
        (b"__keyspace@0__:" + ts, b"ts.incrby"),
        (b"__keyevent@0__:ts.incrby", ts),
        (b"__keyevent@0__:del", f"k{proto}".encode()),
    ], pairs
    p.close()
    r.config_set("notify-keyspace-events", "")
    r.close()


for proto in (2, 3):
    check(proto)
print("pub/sub checks passed in RESP2 and RESP3")
