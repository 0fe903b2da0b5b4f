"""redis-py against a running tickdb, in RESP2 and RESP3. Exits non-zero on any failure.

Usage: TICKDB_PORT=6379 python3 redis_py_basic.py
"""

import os
import sys

import redis

PORT = int(os.environ["TICKDB_PORT"])


def check(proto: int) -> None:
    r = redis.Redis(host="127.0.0.1", port=PORT, protocol=proto, decode_responses=True)
    p = f"py{proto}:"
    assert r.ping() is True
    assert r.set(p + "a", "1") is True
    assert r.get(p + "a") == "1"
    assert r.get(p + "missing") is None
    assert r.set(p + "a", "2", nx=True) is None
    assert r.set(p + "a", "3", xx=True, get=True) == "1"
    assert r.incr(p + "n") == 1
    assert r.incrby(p + "n", 10) == 11
    assert r.decr(p + "n") == 10
    assert r.incrbyfloat(p + "f", 2.5) == 2.5
    assert r.append(p + "s", "ab") == 2
    assert r.strlen(p + "s") == 2
    assert r.mset({p + "x": "1", p + "y": "2"}) is True
    assert r.mget([p + "x", p + "nope", p + "y"]) == ["1", None, "2"]
    assert r.exists(p + "x", p + "y", p + "nope") == 2
    assert r.type(p + "x") == "string"
    assert r.getdel(p + "y") == "2"
    assert r.delete(p + "x", p + "nope") == 1
    assert sorted(r.keys(p + "*")) == sorted([p + "a", p + "n", p + "f", p + "s"])
    assert sorted(r.scan_iter(match=p + "*", count=2)) == sorted(r.keys(p + "*"))

    pipe = r.pipeline(transaction=False)
    for i in range(200):
        pipe.set(f"{p}pipe:{i}", i)
        pipe.get(f"{p}pipe:{i}")
    out = pipe.execute()
    assert out[0::2] == [True] * 200
    assert out[1::2] == [str(i) for i in range(200)]

    assert r.set(p + "t", "text") is True
    try:
        r.incr(p + "t")
        raise AssertionError("INCR on a non-integer must fail")
    except redis.ResponseError as e:
        assert "not an integer" in str(e), e

    info = r.info()
    assert info["redis_version"], info
    assert info["connected_clients"] >= 1
    assert r.info("server")["tcp_port"] == PORT
    assert r.config_get("appendonly") == {"appendonly": "yes"}
    assert r.client_setname("pyclient") is True
    assert r.client_getname() == "pyclient"
    assert isinstance(r.client_id(), int)
    assert any(c.get("name") == "pyclient" for c in r.client_list())
    assert r.dbsize() >= 1
    assert r.echo("hi") == "hi"
    t = r.time()
    assert isinstance(t, tuple) and t[0] > 1_600_000_000
    assert r.command_count() > 20
    assert r.command_getkeys("MSET", "a", "1", "b", "2") == ["a", "b"]
    r.close()


def main() -> int:
    for proto in (2, 3):
        check(proto)
    print(f"redis-py {redis.__version__}: RESP2 and RESP3 checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
