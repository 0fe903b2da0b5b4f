"""Talk to tickdb over ZeroMQ from Python with pyzmq (a libzmq DEALER socket).

Each message is ["", request]: the empty delimiter frame, then one or more RESP requests
(or inline commands). The reply is ["", replies]: the RESP replies to all of them, in order.
"""

import sys

import zmq

endpoint = sys.argv[1] if len(sys.argv) > 1 else "tcp://127.0.0.1:7379"
ctx = zmq.Context()
sock = ctx.socket(zmq.DEALER)
sock.setsockopt(zmq.RCVTIMEO, 10_000)  # ms; recv raises zmq.Again after that
sock.connect(endpoint)


def call(payload: bytes) -> bytes:
    sock.send_multipart([b"", payload])
    empty, reply = sock.recv_multipart()
    assert empty == b""
    return reply


print("PING ->", call(b"*1\r\n$4\r\nPING\r\n").decode().strip())
print("SET ->", call(b"SET hello world").decode().strip())
print("GET ->", call(b"GET hello"))
# Pipelining: several requests in one message, all their replies in one message.
print("pipelined ->", call(b"SET n 1\r\nINCR n\r\nGET n\r\n"))

sock.close(linger=0)
ctx.term()
