"""redis-py's cluster client against a tickdb cluster: it discovers the nodes with CLUSTER SLOTS,
sends writes to the leader, reads from replicas with read_from_replicas, and r.ts() works.

TICKDB_PORTS: comma-separated client ports of the nodes (the first one is the seed node).
"""
import os
import sys
import time

from redis.cluster import RedisCluster

ports = [int(p) for p in os.environ["TICKDB_PORTS"].split(",")]


def check(cond, what):
    if not cond:
        print("FAILED:", what)
        sys.exit(1)


rc = RedisCluster(host="127.0.0.1", port=ports[-1])
nodes = rc.get_nodes()
check(len(nodes) == len(ports), f"discovered {len(nodes)} nodes, want {len(ports)}")
primaries = [n for n in nodes if n.server_type == "primary"]
check(len(primaries) == 1, f"one primary (the leader), got {primaries}")
check(rc.set("py:k", "v1") is True, "SET")
check(rc.get("py:k") == b"v1", "GET")
check(rc.incr("py:n") == 1 and rc.incr("py:n") == 2, "INCR")
ts = rc.ts()
check(ts.add("py:s", 1000, 1.5) == 1000, "TS.ADD")
check(ts.add("py:s", 2000, 2.5) == 2000, "TS.ADD")
check(ts.range("py:s", "-", "+") == [(1000, 1.5), (2000, 2.5)], "TS.RANGE")
info = rc.cluster_info()
check(info["cluster_state"] == "ok" and info["cluster_known_nodes"] == str(len(ports)), info)

# Replica reads are stale at worst: poll until the replicas caught up.
replicas = RedisCluster(host="127.0.0.1", port=ports[0], read_from_replicas=True)
deadline = time.time() + 20
while replicas.get("py:k") != b"v1":
    check(time.time() < deadline, "replica read never caught up")
    time.sleep(0.05)
print("redis-py cluster checks passed")
