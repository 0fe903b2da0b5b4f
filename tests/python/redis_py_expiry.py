"""redis-py's expiry commands against tickdb, in RESP2 and RESP3: SET EX/PX/EXAT/PXAT/KEEPTTL,
EXPIRE with NX/XX/GT/LT, TTL/PTTL/EXPIRETIME, PERSIST, GETEX, a key disappearing at its
deadline, and a series with a deadline. TICKDB_PORT names the server."""

import os
import time

import redis

PORT = int(os.environ["TICKDB_PORT"])


def check(proto):
    r = redis.Redis(port=PORT, protocol=proto)
    k = f"k{proto}"
    assert r.set(k, "v", ex=100)
    assert r.ttl(k) == 100
    assert 99_000 < r.pttl(k) <= 100_000
    assert abs(r.expiretime(k) - (time.time() + 100)) < 5
    assert r.expire(k, 50, gt=True) is False
    assert r.expire(k, 50, lt=True) is True
    assert r.ttl(k) == 50
    assert r.expire(k, 10, nx=True) is False
    assert r.set(k, "w", keepttl=True)
    assert r.ttl(k) == 50
    assert r.persist(k) is True
    assert r.ttl(k) == -1
    assert r.getex(k, px=300) == b"w"
    assert 0 < r.pttl(k) <= 300
    assert r.set(f"at{proto}", "x", pxat=int(time.time() * 1000) + 300)
    assert r.exists(k, f"at{proto}") == 2
    time.sleep(0.5)
    assert r.get(k) is None
    assert r.exists(k, f"at{proto}") == 0
    assert r.ttl(k) == -2
    s = f"ts{proto}"
    r.ts().add(s, 1000, 1.5, labels={"sensor": f"p{proto}"})
    assert r.expire(s, 1)
    assert [str(x, "utf-8") if isinstance(x, bytes) else x for x in r.ts().queryindex([f"sensor=p{proto}"])] == [s]
    time.sleep(1.2)
    assert r.exists(s) == 0
    assert list(r.ts().queryindex([f"sensor=p{proto}"])) == []
    r.close()


for proto in (2, 3):
    check(proto)
print("expiry checks passed in RESP2 and RESP3")
