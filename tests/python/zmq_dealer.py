"""Interoperability checks: a libzmq DEALER (pyzmq) against tickdb's ROUTER endpoint.

Usage: python3 zmq_dealer.py tcp://127.0.0.1:7379
Exits non-zero on the first failed check; prints "all pyzmq checks passed" at the end.
"""

import sys

import zmq

ENDPOINT = sys.argv[1]
TIMEOUT_MS = 10_000
ctx = zmq.Context()


def dealer(identity=None):
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.RCVTIMEO, TIMEOUT_MS)
    sock.setsockopt(zmq.LINGER, 0)
    if identity is not None:
        sock.setsockopt(zmq.ROUTING_ID, identity)
    sock.connect(ENDPOINT)
    return sock


def req(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


def call(sock, payload, delimiter=True):
    if delimiter:
        sock.send_multipart([b"", payload])
        frames = sock.recv_multipart()
        assert len(frames) == 2 and frames[0] == b"", frames
    else:
        sock.send(payload)
        frames = sock.recv_multipart()
        assert len(frames) == 1, frames
    return frames[-1]


def expect(got, want):
    assert got == want, f"got {got!r}, want {want!r}"


d = dealer()
expect(call(d, req("PING")), b"+PONG\r\n")
expect(call(d, b"PING"), b"+PONG\r\n")
expect(call(d, req("SET", "py:k", "v1")), b"+OK\r\n")
expect(call(d, req("GET", "py:k")), b"$2\r\nv1\r\n")
expect(call(d, req("GET", "py:missing")), b"$-1\r\n")

# Pipelined: several requests in one message; several messages before reading.
expect(
    call(d, req("SET", "py:a", "1") + req("INCR", "py:a") + req("GET", "py:a") + b"PING\r\n"),
    b"+OK\r\n:2\r\n$1\r\n2\r\n+PONG\r\n",
)
for i in range(10):
    d.send_multipart([b"", req("ECHO", "m%d" % i)])
for i in range(10):
    expect(d.recv_multipart(), [b"", b"$2\r\nm%d\r\n" % i])

# HELLO 3: a RESP3 map, then RESP3 nulls for this client only.
h = call(d, req("HELLO", "3"))
assert h.startswith(b"%7\r\n") and b"$5\r\nproto\r\n:3\r\n" in h, h
expect(call(d, req("GET", "py:missing")), b"_\r\n")
other = dealer()
expect(call(other, req("GET", "py:missing")), b"$-1\r\n")

# A DEALER without the empty delimiter frame gets bare replies.
bare = dealer()
expect(call(bare, req("PING"), delimiter=False), b"+PONG\r\n")
expect(call(bare, req("SET", "py:b", "x") + req("GET", "py:b"), delimiter=False), b"+OK\r\n$1\r\nx\r\n")

# An explicit routing id shows in CLIENT LIST.
named = dealer(b"py-named")
listing = call(named, req("CLIENT", "LIST")).decode()
line = [l for l in listing.splitlines() if "addr=zmq:70792d6e616d6564 " in l]
assert len(line) == 1 and "transport=zmq" in line[0], listing

# Malformed input: the good request is answered, then the protocol error; the identity starts
# afresh (RESP2 again); the other DEALER keeps its RESP3 state.
expect(call(named, req("HELLO", "3"))[:4], b"%7\r\n")
expect(
    call(named, b"PING\r\n*1\r\nx\r\n"),
    b"+PONG\r\n-ERR Protocol error: expected '$', got 'x'\r\n",
)
expect(call(named, req("GET", "py:missing")), b"$-1\r\n")
expect(call(d, req("GET", "py:missing")), b"_\r\n")

# Many libzmq DEALERs at once, each seeing only its own replies.
socks = [dealer() for _ in range(20)]
for i, s in enumerate(socks):
    s.send_multipart([b"", req("SET", "py:c:%d" % i, "v%d" % i) + req("GET", "py:c:%d" % i)])
for i, s in enumerate(socks):
    v = b"v%d" % i
    expect(s.recv_multipart(), [b"", b"+OK\r\n$%d\r\n%s\r\n" % (len(v), v)])

for s in [d, other, bare, named] + socks:
    s.close()
ctx.term()
print("all pyzmq checks passed")
